// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * xdpsock_peer: an xdpsock-like AF_XDP program on libxdp (1.3), run by
 * skmem's packets-per-second harness as an out-of-process peer.
 *
 * Workloads (one socket on one queue, copy mode, XDP_USE_NEED_WAKEUP):
 *   rxdrop  receive and recycle the frames to the fill ring
 *   l2fwd   swap the MACs and send back out of the same socket
 *   txonly  send one given frame over and over
 * The hot loops are those of libxdp's xdpsock sample (reserve/peek/release
 * in batches, a syscall only when the ring's need_wakeup flag asks for it).
 *
 * No XDP program is loaded (XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD): the
 * harness has its own program on the interface and puts this socket into
 * that program's XSKMAP. The control protocol runs over an inherited
 * AF_UNIX SOCK_SEQPACKET socket (--ctl-fd), one message per step, text:
 *
 *   peer -> harness  "ready <queue>" with the XSK fd attached (SCM_RIGHTS)
 *   harness -> peer  "schedule <t0> <t1> ... <tn>"  (CLOCK_MONOTONIC ns)
 *   harness -> peer  "stop"  (any time; so does EOF, SIGTERM or SIGINT)
 *   peer -> harness  report, one message, one record per line:
 *                      "sample <t_ns> <count>" for each boundary passed
 *                      "counters rx_packets=N tx_queued=N tx_completed=N
 *                       xsk_rx_dropped=N xsk_rx_ring_full=N
 *                       xsk_fill_ring_empty=N"   (one line)
 *                      "end"
 *   peer -> harness  "error <text>"  instead, when something failed
 *
 * The counter sampled at each boundary is the received frames (rxdrop) or
 * the TX completions (l2fwd, txonly). The clock is read once per loop
 * iteration; the control socket is looked at (a non-blocking recv) every
 * CTL_CHECK_NS.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <linux/if_xdp.h>
#include <xdp/xsk.h>

#ifndef SOL_XDP
#define SOL_XDP 283
#endif
/* linux/if_xdp.h of kernels >= 6.17; Debian 12's headers predate it. */
#ifndef XDP_MAX_TX_SKB_BUDGET
#define XDP_MAX_TX_SKB_BUDGET 9
#endif

/* asm-generic/socket.h of kernels >= 5.11. */
#ifndef SO_PREFER_BUSY_POLL
#define SO_PREFER_BUSY_POLL 69
#endif
#ifndef SO_BUSY_POLL_BUDGET
#define SO_BUSY_POLL_BUDGET 70
#endif

#define MAX_BOUNDS 1024
#define CTL_MSG_MAX 65536
#define CTL_CHECK_NS 10000000ull /* 10 ms */
#define DRAIN_NS 200000000ull    /* 200 ms for TX completions at the end */
#define BUSY_RETRY_NS 3000000000ull

enum mode { RXDROP, L2FWD, TXONLY };
enum wait { WAIT_SPIN, WAIT_POLL, WAIT_BUSY_POLL };

struct opts {
	int ctl_fd;
	const char *ifname;
	uint32_t queue;
	enum mode mode;
	uint32_t batch;
	uint32_t frames;
	uint32_t frame_size;
	uint32_t ring;
	enum wait wait;
	int poll_timeout_ms;
	uint32_t busy_poll_us;
	uint32_t tx_budget;
	uint8_t *frame;
	uint32_t frame_len;
};

struct xsk {
	void *area;
	uint64_t area_len;
	struct xsk_umem *umem;
	struct xsk_socket *sock;
	struct xsk_ring_prod fq;
	struct xsk_ring_cons cq;
	struct xsk_ring_prod tx;
	struct xsk_ring_cons rx;
	int fd;
	uint64_t outstanding_tx;
};

struct counts {
	uint64_t rx;
	uint64_t tx_queued;
	uint64_t tx_completed;
};

/* Samples the workload's counter at the schedule's boundaries. */
struct meter {
	uint64_t bounds[MAX_BOUNDS];
	uint64_t at[MAX_BOUNDS];
	uint64_t value[MAX_BOUNDS];
	unsigned n, next;
	uint64_t next_ctl_check;
	int ctl_fd;
	bool stop;
};

static volatile sig_atomic_t signalled;

static void on_signal(int sig)
{
	(void)sig;
	signalled = 1;
}

static int ctl_fd = -1;

/* Reports an error to the harness (best effort) and to stderr, then exits. */
static void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static void die(const char *fmt, ...)
{
	char msg[512];
	char line[600];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "xdpsock_peer: %s\n", msg);
	if (ctl_fd >= 0) {
		int n = snprintf(line, sizeof(line), "error %s", msg);
		if (n > 0)
			(void)send(ctl_fd, line, (size_t)n, MSG_NOSIGNAL);
	}
	exit(1);
}

static inline uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Looks at the control socket without blocking: a stop message or EOF
 * (the harness went away) ends the run. */
static void check_ctl(struct meter *m)
{
	char buf[64];
	ssize_t n = recv(m->ctl_fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
	if (n == 0) {
		m->stop = true;
	} else if (n > 0) {
		buf[n] = '\0';
		if (strncmp(buf, "stop", 4) == 0)
			m->stop = true;
	} else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
		m->stop = true;
	}
}

/* One clock read: records `count` if a boundary has passed; true once the
 * last one has, or when told to stop. */
static inline bool meter_tick(struct meter *m, uint64_t count)
{
	uint64_t now = now_ns();
	if (now >= m->bounds[m->next]) {
		m->at[m->next] = now;
		m->value[m->next] = count;
		m->next++;
		if (m->next == m->n)
			return true;
	}
	if (now >= m->next_ctl_check) {
		m->next_ctl_check = now + CTL_CHECK_NS;
		check_ctl(m);
	}
	return m->stop || signalled;
}

static inline void kick_tx(struct xsk *x)
{
	int ret = sendto(x->fd, NULL, 0, MSG_DONTWAIT, NULL, 0);
	if (ret >= 0 || errno == ENOBUFS || errno == EAGAIN || errno == EBUSY ||
	    errno == ENETDOWN)
		return;
	die("sendto (TX kick): %s", strerror(errno));
}

/* Nothing arrived: wake the kernel if the fill ring asks for it (spin),
 * sleep in poll() (poll), or let the kernel run the NAPI here (busy-poll,
 * as xdpsock's --busy-poll does: the kernel polls only inside a syscall). */
static inline void idle_rx(struct xsk *x, const struct opts *o)
{
	if (o->wait == WAIT_POLL) {
		struct pollfd pfd = { .fd = x->fd, .events = POLLIN };
		if (poll(&pfd, 1, o->poll_timeout_ms) < 0 && errno != EINTR)
			die("poll: %s", strerror(errno));
	} else if (o->wait == WAIT_BUSY_POLL || xsk_ring_prod__needs_wakeup(&x->fq)) {
		recvfrom(x->fd, NULL, 0, MSG_DONTWAIT, NULL, NULL);
	}
}

/* Reserves `n` fill ring slots, waking the kernel while it has none. */
static inline void reserve_fq(struct xsk *x, uint32_t n, uint32_t *idx)
{
	while (xsk_ring_prod__reserve(&x->fq, n, idx) != n) {
		if (xsk_ring_prod__needs_wakeup(&x->fq))
			recvfrom(x->fd, NULL, 0, MSG_DONTWAIT, NULL, NULL);
	}
}

static void rx_drop(struct xsk *x, const struct opts *o, struct meter *m,
		    struct counts *c)
{
	while (!meter_tick(m, c->rx)) {
		uint32_t idx_rx = 0, idx_fq = 0;
		uint32_t rcvd = xsk_ring_cons__peek(&x->rx, o->batch, &idx_rx);
		if (!rcvd) {
			idle_rx(x, o);
			continue;
		}
		reserve_fq(x, rcvd, &idx_fq);
		for (uint32_t i = 0; i < rcvd; i++)
			*xsk_ring_prod__fill_addr(&x->fq, idx_fq++) =
				xsk_ring_cons__rx_desc(&x->rx, idx_rx++)->addr;
		xsk_ring_prod__submit(&x->fq, rcvd);
		xsk_ring_cons__release(&x->rx, rcvd);
		c->rx += rcvd;
	}
}

/* Kicks TX (copy mode transmits in the syscall) and moves completed frames
 * back to the fill ring (xdpsock's complete_tx_l2fwd). */
static inline void complete_l2fwd(struct xsk *x, const struct opts *o,
				  struct counts *c)
{
	uint32_t idx_cq = 0, idx_fq = 0;
	if (!x->outstanding_tx)
		return;
	if (xsk_ring_prod__needs_wakeup(&x->tx))
		kick_tx(x);
	uint32_t want = x->outstanding_tx > o->batch ? o->batch : (uint32_t)x->outstanding_tx;
	uint32_t done = xsk_ring_cons__peek(&x->cq, want, &idx_cq);
	if (!done)
		return;
	reserve_fq(x, done, &idx_fq);
	for (uint32_t i = 0; i < done; i++)
		*xsk_ring_prod__fill_addr(&x->fq, idx_fq++) =
			*xsk_ring_cons__comp_addr(&x->cq, idx_cq++);
	xsk_ring_prod__submit(&x->fq, done);
	xsk_ring_cons__release(&x->cq, done);
	x->outstanding_tx -= done;
	c->tx_completed += done;
}

static inline void swap_macs(uint8_t *p)
{
	uint8_t t[6];
	memcpy(t, p, 6);
	memcpy(p, p + 6, 6);
	memcpy(p + 6, t, 6);
}

static void l2fwd(struct xsk *x, const struct opts *o, struct meter *m,
		  struct counts *c)
{
	while (!meter_tick(m, c->tx_completed)) {
		uint32_t idx_rx = 0, idx_tx = 0;
		complete_l2fwd(x, o, c);
		uint32_t rcvd = xsk_ring_cons__peek(&x->rx, o->batch, &idx_rx);
		if (!rcvd) {
			idle_rx(x, o);
			continue;
		}
		c->rx += rcvd;
		while (xsk_ring_prod__reserve(&x->tx, rcvd, &idx_tx) != rcvd) {
			complete_l2fwd(x, o, c);
			if (xsk_ring_prod__needs_wakeup(&x->tx))
				kick_tx(x);
		}
		for (uint32_t i = 0; i < rcvd; i++) {
			const struct xdp_desc *d = xsk_ring_cons__rx_desc(&x->rx, idx_rx++);
			uint8_t *pkt = xsk_umem__get_data(x->area, d->addr);
			if (d->len >= 12)
				swap_macs(pkt);
			struct xdp_desc *t = xsk_ring_prod__tx_desc(&x->tx, idx_tx++);
			t->addr = d->addr;
			t->len = d->len;
		}
		xsk_ring_prod__submit(&x->tx, rcvd);
		xsk_ring_cons__release(&x->rx, rcvd);
		c->tx_queued += rcvd;
		x->outstanding_tx += rcvd;
	}
}

/* Kicks TX and releases completed frames (xdpsock's complete_tx_only): in
 * txonly every frame already holds the packet, so they are just reused. */
static inline void complete_txonly(struct xsk *x, const struct opts *o,
				   struct counts *c)
{
	uint32_t idx = 0;
	if (!x->outstanding_tx)
		return;
	if (xsk_ring_prod__needs_wakeup(&x->tx))
		kick_tx(x);
	uint32_t done = xsk_ring_cons__peek(&x->cq, o->batch, &idx);
	if (done) {
		xsk_ring_cons__release(&x->cq, done);
		x->outstanding_tx -= done;
		c->tx_completed += done;
	}
}

static void tx_only(struct xsk *x, const struct opts *o, struct meter *m,
		    struct counts *c)
{
	uint32_t frame_nb = 0;
	while (!meter_tick(m, c->tx_completed)) {
		uint32_t idx = 0;
		if (xsk_ring_prod__reserve(&x->tx, o->batch, &idx) < o->batch) {
			/* TX ring full: let the kernel drain it. */
			complete_txonly(x, o, c);
			if (o->wait == WAIT_POLL) {
				struct pollfd pfd = { .fd = x->fd, .events = POLLOUT };
				if (poll(&pfd, 1, o->poll_timeout_ms) < 0 && errno != EINTR)
					die("poll: %s", strerror(errno));
			}
			continue;
		}
		for (uint32_t i = 0; i < o->batch; i++) {
			struct xdp_desc *d = xsk_ring_prod__tx_desc(&x->tx, idx + i);
			d->addr = (uint64_t)frame_nb * o->frame_size;
			d->len = o->frame_len;
			if (++frame_nb == o->frames)
				frame_nb = 0;
		}
		xsk_ring_prod__submit(&x->tx, o->batch);
		c->tx_queued += o->batch;
		x->outstanding_tx += o->batch;
		complete_txonly(x, o, c);
	}
}

/* After the run: collect what is still in flight, for a bounded time. */
static void drain_tx(struct xsk *x, const struct opts *o, struct counts *c)
{
	uint64_t until = now_ns() + DRAIN_NS;
	while (x->outstanding_tx && now_ns() < until) {
		if (o->mode == L2FWD)
			complete_l2fwd(x, o, c);
		else
			complete_txonly(x, o, c);
	}
}

/* Creates the UMEM and the socket; -EBUSY is returned (everything undone)
 * while the queue is still held by a socket that was just closed. */
static int open_xsk(struct xsk *x, const struct opts *o)
{
	struct xsk_umem_config ucfg = {
		.fill_size = o->ring,
		.comp_size = o->ring,
		.frame_size = o->frame_size,
		.frame_headroom = 0,
		.flags = 0,
	};
	struct xsk_socket_config scfg = {
		.rx_size = o->ring,
		.tx_size = o->ring,
		.libxdp_flags = XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD,
		.xdp_flags = 0,
		.bind_flags = XDP_COPY | XDP_USE_NEED_WAKEUP,
	};
	int ret = xsk_umem__create(&x->umem, x->area, x->area_len, &x->fq, &x->cq, &ucfg);
	if (ret)
		die("xsk_umem__create: %s", strerror(-ret));
	ret = xsk_socket__create(&x->sock, o->ifname, o->queue, x->umem, &x->rx, &x->tx, &scfg);
	if (ret) {
		xsk_umem__delete(x->umem);
		x->umem = NULL;
		return ret;
	}
	x->fd = xsk_socket__fd(x->sock);
	return 0;
}

static void setup(struct xsk *x, const struct opts *o)
{
	x->area_len = (uint64_t)o->frames * o->frame_size;
	x->area = mmap(NULL, x->area_len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (x->area == MAP_FAILED)
		die("mmap of %" PRIu64 " bytes: %s", x->area_len, strerror(errno));

	/* The queue stays busy for a moment after the previous program's
	 * socket closed (the kernel frees its pool from a work queue). */
	uint64_t until = now_ns() + BUSY_RETRY_NS;
	int ret;
	while ((ret = open_xsk(x, o)) == -EBUSY && now_ns() < until) {
		struct timespec ts = { 0, 20000000 };
		nanosleep(&ts, NULL);
	}
	if (ret)
		die("xsk_socket__create(%s, queue %u): %s", o->ifname, o->queue, strerror(-ret));

	if (o->tx_budget) {
		int v = (int)o->tx_budget;
		if (setsockopt(x->fd, SOL_XDP, XDP_MAX_TX_SKB_BUDGET, &v, sizeof(v))) {
			if (errno != ENOPROTOOPT)
				die("setsockopt(XDP_MAX_TX_SKB_BUDGET, %u): %s", o->tx_budget,
				    strerror(errno));
			fprintf(stderr, "xdpsock_peer: kernel has no XDP_MAX_TX_SKB_BUDGET, "
					"keeping its default\n");
		}
	}

	if (o->wait == WAIT_BUSY_POLL) {
		int on = 1, us = (int)o->busy_poll_us, budget = (int)o->batch;
		if (setsockopt(x->fd, SOL_SOCKET, SO_PREFER_BUSY_POLL, &on, sizeof(on)) ||
		    setsockopt(x->fd, SOL_SOCKET, SO_BUSY_POLL, &us, sizeof(us)) ||
		    setsockopt(x->fd, SOL_SOCKET, SO_BUSY_POLL_BUDGET, &budget, sizeof(budget)))
			die("setsockopt(busy poll): %s", strerror(errno));
	}

	if (o->mode == TXONLY) {
		/* Every frame holds the packet: TX only hands out addresses. */
		for (uint32_t i = 0; i < o->frames; i++)
			memcpy((uint8_t *)x->area + (uint64_t)i * o->frame_size, o->frame,
			       o->frame_len);
		return;
	}
	/* Give the kernel as many frames as the fill ring holds (no more are
	 * ever in circulation, so returning them never finds it full). */
	uint32_t n = o->frames < o->ring ? o->frames : o->ring;
	uint32_t idx = 0;
	if (xsk_ring_prod__reserve(&x->fq, n, &idx) != n)
		die("fill ring took fewer than %u frames", n);
	for (uint32_t i = 0; i < n; i++)
		*xsk_ring_prod__fill_addr(&x->fq, idx++) = (uint64_t)i * o->frame_size;
	xsk_ring_prod__submit(&x->fq, n);
}

/* Sends "ready <queue>" with the socket's fd attached. */
static void send_ready(const struct xsk *x, const struct opts *o)
{
	char text[32];
	int len = snprintf(text, sizeof(text), "ready %u", o->queue);
	struct iovec iov = { .iov_base = text, .iov_len = (size_t)len };
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	memset(&u, 0, sizeof(u));
	struct msghdr msg = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = u.buf,
		.msg_controllen = sizeof(u.buf),
	};
	struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &x->fd, sizeof(int));
	if (sendmsg(o->ctl_fd, &msg, MSG_NOSIGNAL) < 0)
		die("sendmsg(ready): %s", strerror(errno));
}

/* Waits for the schedule; false if told to stop (or the harness left). */
static bool recv_schedule(struct meter *m, int fd)
{
	static char buf[CTL_MSG_MAX];
	ssize_t n;
	do {
		n = recv(fd, buf, sizeof(buf) - 1, 0);
	} while (n < 0 && errno == EINTR && !signalled);
	if (n <= 0 || signalled)
		return false;
	buf[n] = '\0';
	if (strncmp(buf, "stop", 4) == 0)
		return false;
	if (strncmp(buf, "schedule ", 9) != 0)
		die("expected a schedule, got \"%.40s\"", buf);
	char *p = buf + 9;
	m->n = 0;
	while (*p) {
		char *end;
		errno = 0;
		unsigned long long t = strtoull(p, &end, 10);
		if (end == p || errno)
			die("bad schedule near \"%.20s\"", p);
		if (m->n == MAX_BOUNDS)
			die("schedule has more than %d boundaries", MAX_BOUNDS);
		m->bounds[m->n++] = t;
		p = end;
		while (*p == ' ' || *p == '\n')
			p++;
	}
	if (!m->n)
		die("empty schedule");
	return true;
}

static void send_report(const struct xsk *x, const struct meter *m, const struct counts *c)
{
	static char buf[CTL_MSG_MAX];
	struct xdp_statistics st;
	socklen_t len = sizeof(st);
	memset(&st, 0, sizeof(st));
	if (getsockopt(x->fd, SOL_XDP, XDP_STATISTICS, &st, &len))
		die("getsockopt(XDP_STATISTICS): %s", strerror(errno));
	size_t off = 0;
	for (unsigned i = 0; i < m->next; i++)
		off += (size_t)snprintf(buf + off, sizeof(buf) - off, "sample %" PRIu64 " %" PRIu64 "\n",
					m->at[i], m->value[i]);
	off += (size_t)snprintf(buf + off, sizeof(buf) - off,
				"counters rx_packets=%" PRIu64 " tx_queued=%" PRIu64
				" tx_completed=%" PRIu64 " xsk_rx_dropped=%llu"
				" xsk_rx_ring_full=%llu xsk_fill_ring_empty=%llu\nend\n",
				c->rx, c->tx_queued, c->tx_completed,
				(unsigned long long)st.rx_dropped,
				(unsigned long long)st.rx_ring_full,
				(unsigned long long)st.rx_fill_ring_empty_descs);
	if (off >= sizeof(buf))
		die("report too long");
	if (send(ctl_fd, buf, off, MSG_NOSIGNAL) < 0)
		die("send(report): %s", strerror(errno));
}

static uint32_t parse_u32(const char *name, const char *s)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 0);
	if (errno || *s == '\0' || *end != '\0' || v > UINT32_MAX)
		die("--%s: not a number: %s", name, s);
	return (uint32_t)v;
}

static int hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

static void parse_frame(struct opts *o, const char *hex)
{
	size_t n = strlen(hex);
	if (n % 2)
		die("--frame: odd number of hex digits");
	o->frame_len = (uint32_t)(n / 2);
	o->frame = malloc(o->frame_len ? o->frame_len : 1);
	if (!o->frame)
		die("out of memory");
	for (size_t i = 0; i < o->frame_len; i++) {
		int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			die("--frame: not hex at offset %zu", 2 * i);
		o->frame[i] = (uint8_t)(hi << 4 | lo);
	}
}

static void usage(void)
{
	fprintf(stderr,
		"usage: xdpsock_peer --ctl-fd FD --ifname IF --mode rxdrop|l2fwd|txonly\n"
		"  [--queue 0] [--batch 64] [--frames 4096] [--frame-size 2048] [--ring 1024]\n"
		"  [--wait spin|poll|busy-poll] [--poll-timeout-ms 10] [--busy-poll-us 20]\n"
		"  [--tx-budget N (0: kernel default)]\n"
		"  [--frame HEX (txonly)]\n");
	exit(2);
}

static void parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option longs[] = {
		{ "ctl-fd", required_argument, NULL, 'c' },
		{ "ifname", required_argument, NULL, 'i' },
		{ "queue", required_argument, NULL, 'q' },
		{ "mode", required_argument, NULL, 'm' },
		{ "batch", required_argument, NULL, 'b' },
		{ "frames", required_argument, NULL, 'f' },
		{ "frame-size", required_argument, NULL, 's' },
		{ "ring", required_argument, NULL, 'r' },
		{ "wait", required_argument, NULL, 'w' },
		{ "poll-timeout-ms", required_argument, NULL, 'p' },
		{ "busy-poll-us", required_argument, NULL, 'u' },
		{ "tx-budget", required_argument, NULL, 'B' },
		{ "frame", required_argument, NULL, 'x' },
		{ NULL, 0, NULL, 0 },
	};
	*o = (struct opts){
		.ctl_fd = -1, .batch = 64, .frames = 4096, .frame_size = 2048,
		.ring = 1024, .poll_timeout_ms = 10, .busy_poll_us = 20, .mode = RXDROP, .wait = WAIT_SPIN,
	};
	bool have_mode = false;
	int opt;
	while ((opt = getopt_long(argc, argv, "", longs, NULL)) != -1) {
		switch (opt) {
		case 'c': o->ctl_fd = (int)parse_u32("ctl-fd", optarg); break;
		case 'i': o->ifname = optarg; break;
		case 'q': o->queue = parse_u32("queue", optarg); break;
		case 'm':
			have_mode = true;
			if (!strcmp(optarg, "rxdrop"))
				o->mode = RXDROP;
			else if (!strcmp(optarg, "l2fwd"))
				o->mode = L2FWD;
			else if (!strcmp(optarg, "txonly"))
				o->mode = TXONLY;
			else
				die("--mode: unknown workload %s", optarg);
			break;
		case 'b': o->batch = parse_u32("batch", optarg); break;
		case 'f': o->frames = parse_u32("frames", optarg); break;
		case 's': o->frame_size = parse_u32("frame-size", optarg); break;
		case 'r': o->ring = parse_u32("ring", optarg); break;
		case 'w':
			if (!strcmp(optarg, "spin"))
				o->wait = WAIT_SPIN;
			else if (!strcmp(optarg, "poll"))
				o->wait = WAIT_POLL;
			else if (!strcmp(optarg, "busy-poll"))
				o->wait = WAIT_BUSY_POLL;
			else
				die("--wait: spin, poll or busy-poll, not %s", optarg);
			break;
		case 'p': o->poll_timeout_ms = (int)parse_u32("poll-timeout-ms", optarg); break;
		case 'u': o->busy_poll_us = parse_u32("busy-poll-us", optarg); break;
		case 'B': o->tx_budget = parse_u32("tx-budget", optarg); break;
		case 'x': parse_frame(o, optarg); break;
		default: usage();
		}
	}
	if (optind != argc || o->ctl_fd < 0 || !o->ifname || !have_mode)
		usage();
	ctl_fd = o->ctl_fd;
	if (!o->batch || o->batch > o->ring)
		die("--batch must be 1..=%u (the ring size)", o->ring);
	if (!o->frames)
		die("--frames must be > 0");
	if (o->mode == TXONLY) {
		if (o->frame_len < 14 || o->frame_len > o->frame_size)
			die("txonly needs --frame of 14..=%u bytes", o->frame_size);
		/* At most a TX ring of frames is ever in flight. */
		if (o->frames < o->ring)
			die("txonly needs --frames >= --ring");
	}
}

int main(int argc, char **argv)
{
	struct opts o;
	parse_args(argc, argv, &o);

	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	static struct xsk x;
	static struct meter m;
	struct counts c = { 0, 0, 0 };
	setup(&x, &o);
	send_ready(&x, &o);
	m.ctl_fd = o.ctl_fd;
	if (recv_schedule(&m, o.ctl_fd)) {
		m.next_ctl_check = now_ns() + CTL_CHECK_NS;
		switch (o.mode) {
		case RXDROP: rx_drop(&x, &o, &m, &c); break;
		case L2FWD: l2fwd(&x, &o, &m, &c); break;
		case TXONLY: tx_only(&x, &o, &m, &c); break;
		}
		drain_tx(&x, &o, &c);
	}
	send_report(&x, &m, &c);
	xsk_socket__delete(x.sock);
	xsk_umem__delete(x.umem);
	munmap(x.area, x.area_len);
	free(o.frame);
	return 0;
}
