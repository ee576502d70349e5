/* Guest kernel discovery and bzImage -> ELF vmlinux extraction.
 *
 * qemu's microvm (and firecracker, cloud-hypervisor) boot an ELF vmlinux
 * through its PVH entry; under TCG that is 2-3x faster than a bzImage. A
 * distribution kernel ships only the bzImage, whose protected-mode part carries
 * the ELF vmlinux compressed (like the kernel's scripts/extract-vmlinux finds it). */
#define LOG_MODULE "vmm"

#include <dirent.h>
#include <fcntl.h>
#include <lzma.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <zlib.h>
#include <zstd.h>

#include "vmm/vmm-private.h"

#define NO_KERNEL_MSG                                                                              \
    "no guest kernel found: install one with 'apt-get install linux-image-amd64', or set the "     \
    "kernel setting to an uncompressed vmlinux"
/* A decompressed kernel is ~60 MiB; anything far larger is not one. */
#define MAX_DECOMPRESSED ((size_t)1 << 30)
#define CHUNK            ((size_t)1 << 20)

bool vmm_is_elf(const void *data, size_t len)
{
    return len >= 4 && memcmp(data, "\177ELF", 4) == 0;
}

void vmm_kernel_clear(vmm_kernel *k)
{
    free(k->path);
    free(k->version);
    free(k->modules_dir);
    *k = (vmm_kernel){0};
}

static uint16_t le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static bool is_bzimage(const uint8_t *p, size_t len)
{
    return len > 0x260 && memcmp(p + 0x202, "HdrS", 4) == 0;
}

/* The first word of a NUL/space-terminated string inside the image. */
static char *version_token(const char *s, size_t max)
{
    size_t n = 0;
    while (n < max && n < 128 && s[n] && s[n] != ' ' && s[n] != '\n')
        n++;
    return n > 0 ? xstrndup(s, n) : NULL;
}

char *vmm_kernel_image_version(const void *image, size_t len)
{
    const uint8_t *p = image;
    if (is_bzimage(p, len)) {
        /* Boot protocol: kernel_version at 0x20e points (minus 0x200) at "6.1.0-x (..." */
        size_t off = (size_t)le16(p + 0x20e) + 0x200;
        if (le16(p + 0x20e) != 0 && off < len)
            return version_token((const char *)p + off, len - off);
        return NULL;
    }
    static const char banner[] = "Linux version ";
    const char *b = memmem(image, len, banner, sizeof(banner) - 1);
    if (!b)
        return NULL;
    size_t off = (size_t)(b - (const char *)image) + sizeof(banner) - 1;
    return version_token((const char *)image + off, len - off);
}

typedef enum { COMP_NONE, COMP_GZIP, COMP_XZ, COMP_ZSTD, COMP_LZMA } comp_kind;

static comp_kind detect(const uint8_t *p, size_t len)
{
    if (len >= 3 && p[0] == 0x1f && p[1] == 0x8b && p[2] == 0x08)
        return COMP_GZIP;
    if (len >= 6 && memcmp(p, "\xfd\x37\x7a\x58\x5a\x00", 6) == 0)
        return COMP_XZ;
    if (len >= 4 && memcmp(p, "\x28\xb5\x2f\xfd", 4) == 0)
        return COMP_ZSTD;
    /* Legacy .lzma: properties byte 0x5d and a 4 KiB..4 GiB dictionary. */
    if (len >= 13 && p[0] == 0x5d && p[1] == 0x00 && p[2] == 0x00)
        return COMP_LZMA;
    return COMP_NONE;
}

static int too_big(hypr_error *err)
{
    return hypr_err(err, HYPR_INTERNAL, EFBIG, "decompressed data exceeds %zu MiB",
                    MAX_DECOMPRESSED >> 20);
}

static int inflate_gzip(const uint8_t *in, size_t len, hypr_buf *out, hypr_error *err)
{
    z_stream z = {0};
    if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK)
        return hypr_err(err, HYPR_INTERNAL, ENOMEM, "zlib: init failed");
    z.next_in = (Bytef *)in;
    int r = 0;
    for (;;) {
        if (out->len > MAX_DECOMPRESSED) {
            r = too_big(err);
            break;
        }
        buf_reserve(out, CHUNK);
        /* zlib counts in uInt: feed at most 1 GiB at a time. */
        size_t consumed = (size_t)(z.next_in - in);
        z.avail_in = (uInt)(len - consumed > (1u << 30) ? (1u << 30) : len - consumed);
        z.next_out = (Bytef *)out->data + out->len;
        z.avail_out = (uInt)CHUNK;
        int zr = inflate(&z, Z_NO_FLUSH);
        out->len += CHUNK - z.avail_out;
        if (zr == Z_STREAM_END)
            break;
        if (zr != Z_OK && !(zr == Z_BUF_ERROR && z.avail_out == 0)) {
            r = hypr_err(err, HYPR_INTERNAL, EBADMSG, "gzip: %s", z.msg ? z.msg : "corrupt data");
            break;
        }
        if (z.avail_in == 0 && z.avail_out != 0 && (size_t)(z.next_in - in) >= len) {
            r = hypr_err(err, HYPR_INTERNAL, EBADMSG, "gzip: truncated data");
            break;
        }
    }
    inflateEnd(&z);
    return r;
}

static int decode_lzma(const uint8_t *in, size_t len, bool xz, hypr_buf *out, hypr_error *err)
{
    lzma_stream s = LZMA_STREAM_INIT;
    lzma_ret lr = xz ? lzma_stream_decoder(&s, UINT64_MAX, 0) : lzma_alone_decoder(&s, UINT64_MAX);
    if (lr != LZMA_OK)
        return hypr_err(err, HYPR_INTERNAL, ENOMEM, "liblzma: init failed (%d)", (int)lr);
    s.next_in = in;
    s.avail_in = len;
    int r = 0;
    for (;;) {
        if (out->len > MAX_DECOMPRESSED) {
            r = too_big(err);
            break;
        }
        buf_reserve(out, CHUNK);
        s.next_out = (uint8_t *)out->data + out->len;
        s.avail_out = CHUNK;
        /* LZMA_FINISH: all input is there; trailing bytes after the stream are ignored. */
        lr = lzma_code(&s, LZMA_FINISH);
        out->len += CHUNK - s.avail_out;
        if (lr == LZMA_STREAM_END)
            break;
        if (lr != LZMA_OK && !(lr == LZMA_BUF_ERROR && s.avail_out == 0)) {
            r = hypr_err(err, HYPR_INTERNAL, EBADMSG, "%s: corrupt data (%d)", xz ? "xz" : "lzma",
                         (int)lr);
            break;
        }
    }
    lzma_end(&s);
    return r;
}

static int decode_zstd(const uint8_t *in, size_t len, hypr_buf *out, hypr_error *err)
{
    ZSTD_DStream *ds = ZSTD_createDStream();
    if (!ds)
        return hypr_err(err, HYPR_INTERNAL, ENOMEM, "zstd: init failed");
    /* The kernel compresses itself with a large window. */
    ZSTD_DCtx_setParameter(ds, ZSTD_d_windowLogMax, 31);
    ZSTD_inBuffer ib = {in, len, 0};
    int r = 0;
    for (;;) {
        if (out->len > MAX_DECOMPRESSED) {
            r = too_big(err);
            break;
        }
        buf_reserve(out, CHUNK);
        ZSTD_outBuffer ob = {out->data + out->len, CHUNK, 0};
        size_t zr = ZSTD_decompressStream(ds, &ob, &ib);
        out->len += ob.pos;
        if (ZSTD_isError(zr)) {
            r = hypr_err(err, HYPR_INTERNAL, EBADMSG, "zstd: %s", ZSTD_getErrorName(zr));
            break;
        }
        if (zr == 0)
            break; /* frame complete */
        if (ib.pos == ib.size && ob.pos < ob.size) {
            r = hypr_err(err, HYPR_INTERNAL, EBADMSG, "zstd: truncated data");
            break;
        }
    }
    ZSTD_freeDStream(ds);
    return r;
}

static int decompress_kind(comp_kind k, const uint8_t *in, size_t len, hypr_buf *out,
                           hypr_error *err)
{
    out->len = 0;
    switch (k) {
    case COMP_GZIP:
        return inflate_gzip(in, len, out, err);
    case COMP_XZ:
        return decode_lzma(in, len, true, out, err);
    case COMP_LZMA:
        return decode_lzma(in, len, false, out, err);
    case COMP_ZSTD:
        return decode_zstd(in, len, out, err);
    case COMP_NONE:
        break;
    }
    return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "unknown compression format");
}

int vmm_decompress_stream(const void *data, size_t len, hypr_buf *out, hypr_error *err)
{
    comp_kind k = detect(data, len);
    if (k == COMP_NONE)
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "not gzip, xz or zstd compressed data");
    return decompress_kind(k, data, len, out, err);
}

/* Tries a candidate payload; 1 when it decompresses to an ELF file. */
static int try_payload(const uint8_t *p, size_t len, hypr_buf *out)
{
    comp_kind k = detect(p, len);
    if (k == COMP_NONE)
        return 0;
    _cleanup_error_ hypr_error ignored = HYPR_ERROR_INIT;
    if (decompress_kind(k, p, len, out, &ignored) < 0)
        return 0;
    return vmm_is_elf(out->data, out->len) ? 1 : 0;
}

int vmm_kernel_decompress(const void *image, size_t len, hypr_buf *out, hypr_error *err)
{
    const uint8_t *p = image;
    /* The boot protocol (>= 2.08) says where the payload is. */
    if (is_bzimage(p, len) && le16(p + 0x206) >= 0x208) {
        size_t setup_sects = p[0x1f1] ? p[0x1f1] : 4;
        size_t pm = (setup_sects + 1) * 512;
        size_t off = pm + le32(p + 0x248);
        size_t plen = le32(p + 0x24c);
        if (off < len && plen <= len - off && try_payload(p + off, plen, out))
            return 0;
    }
    /* Otherwise scan for a compressed stream, as scripts/extract-vmlinux does. */
    for (size_t i = 0; i + 4 < len; i++) {
        uint8_t c = p[i];
        if (c != 0x1f && c != 0xfd && c != 0x28 && c != 0x5d)
            continue;
        if (try_payload(p + i, len - i, out))
            return 0;
    }
    out->len = 0;
    return hypr_err(err, HYPR_INVALID_ARGUMENT, ENOEXEC,
                    "no gzip, xz, zstd or lzma compressed ELF kernel found in the image");
}

/* ---- discovery ----------------------------------------------------------- */

static bool is_regular(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* The newest <boot_dir>/vmlinuz-<version> by version order. */
static int newest_vmlinuz(const char *boot_dir, char **path, char **version)
{
    *path = NULL;
    *version = NULL;
    DIR *d = opendir(boot_dir);
    if (!d)
        return errno == ENOENT ? 0 : -errno;
    struct dirent *de;
    while ((de = readdir(d))) {
        const char *v = de->d_name + strlen("vmlinuz-");
        if (!str_startswith(de->d_name, "vmlinuz-") || !*v || str_endswith(v, ".old") ||
            strstr(v, ".dpkg-"))
            continue;
        _cleanup_free_ char *full = path_join(boot_dir, de->d_name);
        if (!is_regular(full))
            continue;
        if (*version && strverscmp(v, *version) <= 0)
            continue;
        free(*path);
        free(*version);
        *path = TAKE_PTR(full);
        *version = xstrdup(v);
    }
    closedir(d);
    return 0;
}

typedef struct mapped_file {
    void *data;
    size_t len;
    struct stat st;
} mapped_file;

static void mapped_file_clear(mapped_file *m)
{
    if (m->data && m->data != MAP_FAILED)
        munmap(m->data, m->len);
    m->data = NULL;
}

static int map_file(const char *path, mapped_file *m, hypr_error *err)
{
    *m = (mapped_file){0};
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &m->st) < 0)
        return hypr_err(err, HYPR_FAILED_PRECONDITION, errno, "kernel %s: %s", path,
                        strerror(errno));
    if (!S_ISREG(m->st.st_mode) || m->st.st_size < 16)
        return hypr_err(err, HYPR_FAILED_PRECONDITION, EINVAL, "kernel %s: not a kernel image",
                        path);
    m->len = (size_t)m->st.st_size;
    m->data = mmap(NULL, m->len, PROT_READ, MAP_PRIVATE, fd, 0);
    if (m->data == MAP_FAILED) {
        m->data = NULL;
        return hypr_err(err, HYPR_INTERNAL, errno, "kernel %s: mmap: %s", path, strerror(errno));
    }
    return 0;
}

/* Cache key: changes whenever the source image does. */
static uint32_t image_stamp(const char *path, const struct stat *st)
{
    uint64_t h = 1469598103934665603ull;
    uint64_t parts[] = {(uint64_t)st->st_size, (uint64_t)st->st_mtim.tv_sec,
                        (uint64_t)st->st_mtim.tv_nsec, (uint64_t)st->st_ino};
    for (const char *s = path; *s; s++)
        h = (h ^ (uint8_t)*s) * 1099511628211ull;
    for (size_t i = 0; i < ARRAY_SIZE(parts); i++)
        for (int b = 0; b < 8; b++)
            h = (h ^ ((parts[i] >> (b * 8)) & 0xff)) * 1099511628211ull;
    return (uint32_t)(h ^ (h >> 32));
}

static int extract_to_cache(const char *src, const mapped_file *m, const char *version,
                            const char *data_dir, char **out_path, hypr_error *err)
{
    if (str_empty(data_dir))
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                        "kernel %s is compressed and there is no data dir to cache it in", src);
    _cleanup_free_ char *dir = xasprintf("%s/kernel/cache", data_dir);
    _cleanup_free_ char *cached =
        xasprintf("%s/vmlinux-%s-%08x", dir, version ? version : "x", image_stamp(src, &m->st));
    if (is_regular(cached)) {
        *out_path = TAKE_PTR(cached);
        return 0;
    }
    int64_t t0 = time_monotonic_ms();
    _cleanup_buf_ hypr_buf elf = {0};
    int r = vmm_kernel_decompress(m->data, m->len, &elf, err);
    if (r < 0)
        return hypr_err_prefix(err, "kernel %s", src);
    r = mkdir_p(dir, 0755);
    if (r < 0)
        return hypr_err(err, HYPR_INTERNAL, -r, "create %s: %s", dir, strerror(-r));
    r = write_file_atomic(cached, elf.data, elf.len, 0644);
    if (r < 0)
        return hypr_err(err, HYPR_INTERNAL, -r, "write %s: %s", cached, strerror(-r));
    log_info("extracted the ELF kernel from %s into %s (%zu MiB, %" PRId64 " ms)", src, cached,
             elf.len >> 20, time_monotonic_ms() - t0);
    *out_path = TAKE_PTR(cached);
    return 0;
}

int vmm_kernel_find(const vmm_kernel_opts *opts, vmm_kernel *out, hypr_error *err)
{
    *out = (vmm_kernel){0};
    const char *boot_dir = opts->boot_dir ? opts->boot_dir : "/boot";
    const char *modules_root = opts->modules_root ? opts->modules_root : "/lib/modules";
    _cleanup_free_ char *src = NULL, *version = NULL;

    if (!str_empty(opts->setting)) {
        if (!is_regular(opts->setting))
            return hypr_err(err, HYPR_FAILED_PRECONDITION, ENOENT,
                            "kernel setting: %s: no such file", opts->setting);
        src = xstrdup(opts->setting);
    } else {
        if (!str_empty(opts->data_dir)) {
            _cleanup_free_ char *p = xasprintf("%s/kernel/vmlinux", opts->data_dir);
            if (is_regular(p))
                src = TAKE_PTR(p);
        }
        if (!src) {
            int r = newest_vmlinuz(boot_dir, &src, &version);
            if (r < 0)
                return hypr_err(err, HYPR_INTERNAL, -r, "read %s: %s", boot_dir, strerror(-r));
        }
    }
    if (!src)
        return hypr_err(err, HYPR_FAILED_PRECONDITION, ENOENT, NO_KERNEL_MSG);

    mapped_file m;
    int r = map_file(src, &m, err);
    if (r < 0)
        return r;
    if (!version)
        version = vmm_kernel_image_version(m.data, m.len);
    _cleanup_free_ char *path = NULL;
    if (vmm_is_elf(m.data, m.len))
        path = xstrdup(src);
    else
        r = extract_to_cache(src, &m, version, opts->data_dir, &path, err);
    mapped_file_clear(&m);
    if (r < 0)
        return r;

    if (version) {
        _cleanup_free_ char *md = path_join(modules_root, version);
        struct stat st;
        if (stat(md, &st) == 0 && S_ISDIR(st.st_mode))
            out->modules_dir = TAKE_PTR(md);
        else
            log_debug("kernel %s: no module directory %s", src, md);
    }
    log_debug("guest kernel %s (version %s)", path, version ? version : "unknown");
    out->path = TAKE_PTR(path);
    out->version = TAKE_PTR(version);
    return 0;
}
