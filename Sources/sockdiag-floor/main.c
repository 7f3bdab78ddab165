// sockdiag-floor: the benchmark's floor. The four SOCK_DIAG_BY_FAMILY dumps that
// `zabbix-sockets stats` does, with nothing else: no extensions, no address parsing,
// only a count per (protocol, family, state). Whatever our collector spends above this
// is its own overhead.
//
//   sockdiag-floor [--netns NAME|PATH]
//
// Output, one line per dump, then totals:
//   tcp4 total=N established=N syn_sent=N ... closing=N
//   ...
//   tcp total=N udp total=N
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <linux/inet_diag.h>

// Same receive buffer size as our collector, so the number of recv calls is comparable.
#define RECV_BUF_SIZE (64 * 1024)

static const char *const state_names[12] = {
    "unknown",  "established", "syn_sent", "syn_recv",   "fin_wait1", "fin_wait2",
    "time_wait", "close",      "close_wait", "last_ack", "listen",    "closing",
};

// Counts indexed by kernel state number (1..11); slot 0 collects anything out of range.
struct counts {
    unsigned long state[12];
    unsigned long total;
};

static void die(const char *what) {
    fprintf(stderr, "sockdiag-floor: error: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void enter_netns(const char *name) {
    char path[4096];
    // A name as `ip netns add` makes it, or any path to a netns file (/proc/PID/ns/net).
    if (strchr(name, '/'))
        snprintf(path, sizeof path, "%s", name);
    else
        snprintf(path, sizeof path, "/run/netns/%s", name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "sockdiag-floor: error: cannot open netns %s: %s\n", path, strerror(errno));
        exit(1);
    }
    if (setns(fd, CLONE_NEWNET) != 0) die("setns");
    close(fd);
}

// One dump: send the request, read until NLMSG_DONE, count each message by idiag_state.
static void dump(int fd, unsigned char family, unsigned char protocol, unsigned int seq,
                 struct counts *c, unsigned char *buf) {
    struct {
        struct nlmsghdr nlh;
        struct inet_diag_req_v2 req;
    } msg;
    memset(&msg, 0, sizeof msg);
    msg.nlh.nlmsg_len = sizeof msg;
    msg.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    msg.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    msg.nlh.nlmsg_seq = seq;
    msg.req.sdiag_family = family;
    msg.req.sdiag_protocol = protocol;
    // TCP: states 0..11 (the kernel adds NEW_SYN_RECV itself); 12 and 13 are kernel-internal.
    // UDP: every state (UDP sockets only use 1 and 7).
    msg.req.idiag_states = protocol == IPPROTO_TCP ? 0xFFFu : 0xFFFFFFFFu;

    struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
    if (sendto(fd, &msg, sizeof msg, 0, (struct sockaddr *)&kernel, sizeof kernel) < 0) die("sendto");

    for (;;) {
        ssize_t n = recv(fd, buf, RECV_BUF_SIZE, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("recv");
        }
        if (n == 0) {
            fprintf(stderr, "sockdiag-floor: error: netlink socket closed mid-dump\n");
            exit(1);
        }
        for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, n); h = NLMSG_NEXT(h, n)) {
            if (h->nlmsg_seq != seq) continue;  // not ours (cannot happen on a fresh socket)
            if (h->nlmsg_type == NLMSG_DONE) {
                // The kernel puts the dump's final status in NLMSG_DONE's payload.
                if (h->nlmsg_len >= NLMSG_LENGTH(sizeof(int)) && *(const int *)NLMSG_DATA(h) < 0) {
                    errno = -*(const int *)NLMSG_DATA(h);
                    die("netlink dump");
                }
                return;
            }
            if (h->nlmsg_type == NLMSG_ERROR) {
                const struct nlmsgerr *e = NLMSG_DATA(h);
                errno = h->nlmsg_len >= NLMSG_LENGTH(sizeof *e) ? -e->error : EPROTO;
                die("netlink dump");
            }
            if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY || h->nlmsg_len < NLMSG_LENGTH(sizeof(struct inet_diag_msg)))
                continue;
            const struct inet_diag_msg *m = NLMSG_DATA(h);
            c->state[m->idiag_state < 12 ? m->idiag_state : 0]++;
            c->total++;
        }
    }
}

static void print_counts(const char *name, const struct counts *c) {
    printf("%s total=%lu", name, c->total);
    for (int s = 1; s < 12; s++) printf(" %s=%lu", state_names[s], c->state[s]);
    if (c->state[0]) printf(" other=%lu", c->state[0]);
    printf("\n");
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "--netns") == 0) {
        enter_netns(argv[2]);
    } else if (argc != 1) {
        fprintf(stderr, "usage: sockdiag-floor [--netns NAME|PATH]\n");
        return 2;
    }

    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    if (fd < 0) die("socket(NETLINK_SOCK_DIAG)");
    static unsigned char buf[RECV_BUF_SIZE] __attribute__((aligned(NLMSG_ALIGNTO)));

    static const struct { const char *name; unsigned char family, protocol; } dumps[4] = {
        {"tcp4", AF_INET, IPPROTO_TCP},
        {"tcp6", AF_INET6, IPPROTO_TCP},
        {"udp4", AF_INET, IPPROTO_UDP},
        {"udp6", AF_INET6, IPPROTO_UDP},
    };
    struct counts c[4];
    memset(c, 0, sizeof c);
    for (unsigned i = 0; i < 4; i++) dump(fd, dumps[i].family, dumps[i].protocol, i + 1, &c[i], buf);
    close(fd);

    for (unsigned i = 0; i < 4; i++) print_counts(dumps[i].name, &c[i]);
    printf("tcp total=%lu udp total=%lu\n", c[0].total + c[1].total, c[2].total + c[3].total);
    return 0;
}
