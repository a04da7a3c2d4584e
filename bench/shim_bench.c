/* Exec-to-exit latency of several ways to start a program, interleaved.
 *
 *   shim_bench ROUNDS VARIANT... where VARIANT is  [NAME=VALUE...] PROGRAM --
 *
 * Each round starts every variant once (rotating which goes first), with
 * posix_spawn, stdout to /dev/null, and times spawn-to-reap with
 * CLOCK_MONOTONIC. Prints one line per start: `variant nanoseconds cpu`,
 * cpu the child's user + system time from wait4 (nanoseconds): the work it
 * did, whatever else the machine was running meanwhile. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>

#define MAX_VARIANTS 16

struct variant {
    char *program;
    char **env;
};

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static long long start_once(const struct variant *v, posix_spawn_file_actions_t *fa,
                            long long *cpu)
{
    char *argv[] = {v->program, NULL};
    pid_t pid;
    int status;
    struct rusage ru;
    long long t0 = now_ns();
    if (posix_spawn(&pid, v->program, fa, NULL, argv, v->env) != 0)
        return -1;
    if (wait4(pid, &status, 0, &ru) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return -1;
    long long t = now_ns() - t0;
    *cpu = (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000LL +
           (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000LL;
    return t;
}

int main(int argc, char **argv)
{
    struct variant v[MAX_VARIANTS];
    int n = 0;
    if (argc < 3)
        return 2;
    long rounds = atol(argv[1]);
    for (int i = 2; i < argc && n < MAX_VARIANTS; n++) {
        int first = i;
        while (i < argc && strcmp(argv[i], "--") != 0)
            i++;
        if (i == first || i == argc)
            return 2;
        argv[i - 1 + 1] = NULL; /* the "--" ends this variant's env list */
        v[n].program = argv[i - 1];
        argv[i - 1] = NULL;
        v[n].env = &argv[first];
        i++;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    for (long r = 0; r < rounds; r++) {
        for (int k = 0; k < n; k++) {
            int j = (int)((r + k) % n);
            long long cpu = 0, t = start_once(&v[j], &fa, &cpu);
            if (t < 0) {
                fprintf(stderr, "shim_bench: %s failed\n", v[j].program);
                return 1;
            }
            printf("%d %lld %lld\n", j, t, cpu);
        }
    }
    return 0;
}
