/*
 * Preloaded into `dpdk-test` (LD_PRELOAD) by skmem's `mempool` benchmark.
 *
 * DPDK's mempool_perf_autotest measures every case for a compile-time 5 s
 * (TIME_S) and runs its 720 cases in a fixed order, cache-less pools first:
 * its cached cases start ~30 min in. Dividing the TSC rate the test reads
 * (rte_get_tsc_hz, which rte_get_timer_hz returns) by SKMEM_DPDK_TSC_DIV
 * makes each case last 5 s / DIV of real time; the test still divides its
 * count by 5, so the benchmark multiplies rate_persec by DIV. Nothing else in
 * the test or the mempool library changes.
 *
 * It also makes stdout line-buffered: dpdk-test writes its results with
 * printf, which a pipe would otherwise hold until exit.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static double divisor = 1.0;

__attribute__((constructor)) static void skmem_dpdk_clock_init(void)
{
	const char *d = getenv("SKMEM_DPDK_TSC_DIV");

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (d != NULL && strtod(d, NULL) >= 1.0)
		divisor = strtod(d, NULL);
}

uint64_t rte_get_tsc_hz(void)
{
	static uint64_t (*real)(void);

	if (real == NULL)
		real = (uint64_t (*)(void))dlsym(RTLD_NEXT, "rte_get_tsc_hz");
	if (real == NULL)
		abort();
	return (uint64_t)((double)real() / divisor);
}
