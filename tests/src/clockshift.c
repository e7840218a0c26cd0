/* A clock shifted by CLOCK_SHIFT_US microseconds (negative: behind), for a redis-server
 * started with LD_PRELOAD: the wall clock (CLOCK_REALTIME and gettimeofday) only, which
 * is what TIME, INFO's server_time_usec and key expiry read... except expiry, which Redis
 * also takes from the wall clock; the tests shift a replica, whose keys expire only when
 * its primary says so. Built by the test support with the system's C compiler. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>

static long long shift_us(void) {
    static long long shift = 0;
    static int read = 0;
    if (!read) {
        const char *text = getenv("CLOCK_SHIFT_US");
        shift = text ? atoll(text) : 0;
        read = 1;
    }
    return shift;
}

int clock_gettime(clockid_t id, struct timespec *ts) {
    static int (*real)(clockid_t, struct timespec *) = 0;
    if (!real) {
        real = (int (*)(clockid_t, struct timespec *))dlsym(RTLD_NEXT, "clock_gettime");
    }
    int result = real(id, ts);
    if (result == 0 && (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE)) {
        long long ns = (long long)ts->tv_sec * 1000000000LL + ts->tv_nsec + shift_us() * 1000LL;
        ts->tv_sec = ns / 1000000000LL;
        ts->tv_nsec = ns % 1000000000LL;
    }
    return result;
}

int gettimeofday(struct timeval *tv, void *tz) {
    (void)tz;
    struct timespec ts;
    int result = clock_gettime(CLOCK_REALTIME, &ts);
    if (result == 0 && tv) {
        tv->tv_sec = ts.tv_sec;
        tv->tv_usec = ts.tv_nsec / 1000;
    }
    return result;
}
