/* Prints what a program can see of its own start, one `key value` line each:
 * the executable, AT_EXECFN, whether AT_ENTRY is its own _start, the file
 * mapped at AT_BASE, argv and the whole environment. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

extern char _start[];
extern char **environ;

/* The file mapped at `addr`, from /proc/self/maps. */
static void print_mapping(const char *key, unsigned long addr)
{
    FILE *maps = fopen("/proc/self/maps", "r");
    char line[4096];
    while (maps && fgets(line, sizeof line, maps)) {
        unsigned long lo, hi;
        char *slash = strchr(line, '/');
        if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && lo <= addr && addr < hi && slash) {
            printf("%s %s", key, slash);
            break;
        }
    }
    if (maps)
        fclose(maps);
}

/* The open file descriptors, in order: none of the shim's may be left. */
static void print_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int seen[64], n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)) && n < 64)
        if (e->d_name[0] != '.' && atoi(e->d_name) != dirfd(d))
            seen[n++] = atoi(e->d_name);
    if (d)
        closedir(d);
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && seen[j - 1] > seen[j]; j--) {
            int t = seen[j];
            seen[j] = seen[j - 1];
            seen[j - 1] = t;
        }
    printf("fds");
    for (int i = 0; i < n; i++)
        printf(" %d", seen[i]);
    printf("\n");
}

int main(int argc, char **argv)
{
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[n < 0 ? 0 : n] = 0;
    printf("exe %s\n", exe);
    printf("execfn %s\n", (const char *)getauxval(AT_EXECFN));
    printf("entry_is_start %d\n", getauxval(AT_ENTRY) == (unsigned long)_start);
    print_mapping("base", getauxval(AT_BASE));
    printf("secure %lu\n", getauxval(AT_SECURE));
    print_fds();
    for (int i = 0; i < argc; i++)
        printf("arg %s\n", argv[i]);
    for (char **e = environ; *e; e++)
        printf("env %s\n", *e);
    return 0;
}
