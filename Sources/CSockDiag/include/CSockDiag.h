// Linux netlink / sock_diag / inet_diag / unix_diag for Swift.
// Only the kernel's uapi headers: libc headers here would clash with Swift's Glibc module.
// Swift cannot import function-like macros, so the few we need are restated as inline functions.
#ifndef CSOCKDIAG_H
#define CSOCKDIAG_H

#include <linux/types.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <linux/inet_diag.h>
#include <linux/unix_diag.h>
#include <linux/sched.h>

/// A sock_diag dump request as it goes on the wire: header, then the v2 request.
struct csd_dump_request {
    struct nlmsghdr header;
    struct inet_diag_req_v2 request;
};

/// A unix_diag dump request as it goes on the wire: header, then the AF_UNIX request.
struct csd_unix_dump_request {
    struct nlmsghdr header;
    struct unix_diag_req request;
};

static inline __u32 csd_nlmsg_align(__u32 len) { return NLMSG_ALIGN(len); }

/// setns(2) is declared by <sched.h> only under _GNU_SOURCE, which Swift's Glibc module lacks.
int setns(int fd, int nstype);
static inline int csd_setns(int fd, int nstype) { return setns(fd, nstype); }
static inline int csd_clone_newnet(void) { return CLONE_NEWNET; }

#endif
