/* kestrel: the control channel to the host. vsock (CID 2, port 1024) first, else
 * the virtio-serial port named "hypr.ctl"; neither: logs stay on the console and
 * the loop retries every second. */
#include "kestrel.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

/* musl's headers have no linux/vm_sockets.h: the (stable) kernel ABI. */
#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif
struct kestrel_sockaddr_vm {
    sa_family_t svm_family;
    unsigned short svm_reserved1;
    unsigned int svm_port;
    unsigned int svm_cid;
    unsigned char svm_flags;
    unsigned char svm_zero[3];
};

void channel_init(channel *c)
{
    memset(c, 0, sizeof(*c));
    c->fd = -1;
    ctl_decoder_init(&c->dec);
}

void channel_close(channel *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->state = CHAN_DOWN;
    ctl_decoder_reset(&c->dec);
    c->out.len = 0;
    c->retry_at_ms = mono_ms() + 1000;
}

/* /sys/class/virtio-ports/vportNpM/name == "hypr.ctl" -> /dev/vportNpM */
static int find_serial_port(char *path, size_t len)
{
    DIR *d = opendir("/sys/class/virtio-ports");
    if (!d)
        return -ENOENT;
    int r = -ENOENT;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        char npath[512];
        int n = snprintf(npath, sizeof(npath), "/sys/class/virtio-ports/%s/name", de->d_name);
        if (n < 0 || (size_t)n >= sizeof(npath))
            continue;
        char *name = NULL;
        if (read_file_all(npath, 4096, &name, NULL) < 0)
            continue;
        name[strcspn(name, "\n")] = 0;
        bool match = strcmp(name, CTL_SERIAL_NAME) == 0;
        free(name);
        if (match) {
            n = snprintf(path, len, "/dev/%s", de->d_name);
            r = n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
            break;
        }
    }
    closedir(d);
    return r;
}

static int open_serial(channel *c)
{
    char path[300];
    int r = find_serial_port(path, sizeof(path));
    if (r < 0)
        return r;
    int fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return -errno;
    /* The port reports POLLHUP while no host process has its end open. */
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    if (poll(&p, 1, 0) == 1 && (p.revents & POLLHUP)) {
        close(fd);
        return -ENOTCONN;
    }
    c->fd = fd;
    c->vsock = false;
    c->state = CHAN_UP;
    return 0;
}

int channel_open(channel *c)
{
    if (c->state != CHAN_DOWN)
        return 0;
    ctl_decoder_reset(&c->dec);
    c->out.len = 0;
    int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd >= 0) {
        struct kestrel_sockaddr_vm sa;
        memset(&sa, 0, sizeof(sa));
        sa.svm_family = AF_VSOCK;
        sa.svm_port = CTL_VSOCK_PORT;
        sa.svm_cid = CTL_VSOCK_CID;
        int r = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 ? 0 : -errno;
        if (r == 0 || r == -EINPROGRESS) {
            c->fd = fd;
            c->vsock = true;
            c->state = r == 0 ? CHAN_UP : CHAN_CONNECTING;
            return 0;
        }
        close(fd);
    }
    return open_serial(c);
}

int channel_connect_done(channel *c)
{
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err == EINPROGRESS || err == EALREADY)
        return -EINPROGRESS;
    if (err == 0) {
        c->state = CHAN_UP;
        return 0;
    }
    close(c->fd);
    c->fd = -1;
    c->state = CHAN_DOWN;
    /* vsock is there but nobody listens: the host may use the serial port. */
    if (open_serial(c) == 0)
        return 0;
    c->retry_at_ms = mono_ms() + 1000;
    return -err;
}

int channel_flush(channel *c)
{
    while (c->state == CHAN_UP && c->out.len > 0) {
        ssize_t n = write(c->fd, c->out.data, c->out.len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                return 0;
            int e = -errno;
            channel_close(c);
            return e;
        }
        ctl_buf_consume(&c->out, (size_t)n);
    }
    return 0;
}

void channel_drain(channel *c, int timeout_ms)
{
    int64_t until = mono_ms() + timeout_ms;
    while (c->state != CHAN_DOWN) {
        if (c->state == CHAN_UP) {
            channel_flush(c);
            if (c->out.len == 0)
                return;
        }
        int64_t left = until - mono_ms();
        if (left <= 0)
            return;
        struct pollfd p = {.fd = c->fd, .events = POLLOUT};
        if (poll(&p, 1, (int)left) <= 0)
            continue;
        if (c->state == CHAN_CONNECTING) {
            int r = channel_connect_done(c);
            if (r < 0 && r != -EINPROGRESS)
                return;
        } else if (p.revents & (POLLERR | POLLHUP)) {
            channel_close(c);
            return;
        }
    }
}
