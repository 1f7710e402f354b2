/* The compiled launcher of `python -m bench.spawn_memory` (issue 28): a long-lived process a few hundred KiB big
 * that makes each task with clone(CLONE_VM | CLONE_VFORK | CLONE_PARENT): the engine is the task's parent (so it
 * wait4s it as today) and the task's memory high-water mark starts from this process's, not the engine's.
 *
 * stdin: requests, each "LENGTH\n" then LENGTH bytes of NUL-separated fields: the engine's fd of the task's stdout
 * pipe, of its stderr pipe, the argument count, the arguments, then K=V variables added to this process's
 * environment. fd 3: one reply line per request, the task's pid (or -errno). argv[1]: the engine's pid. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_FIELDS 8192
static char request[1 << 21];
static char *arguments[MAX_FIELDS], *environment[MAX_FIELDS];
static int task_out, task_err;
static char stack[1 << 16];

static int task(void *unused) {
    (void)unused;
    dup2(task_out, 1);
    dup2(task_err, 2);
    setsid();
    execve(arguments[0], arguments, environment);
    _exit(127);
}

static int open_engine_fd(const char *engine, const char *fd) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%s/fd/%s", engine, fd);
    return open(path, O_WRONLY | O_CLOEXEC);
}

int main(int argc, char **argv) {
    extern char **environ;
    size_t inherited = 0, length;
    if (argc != 2) return 2;
    while (environ[inherited] && inherited < MAX_FIELDS / 2) inherited++;
    FILE *in = fdopen(0, "r");
    while (fscanf(in, "%zu", &length) == 1 && fgetc(in) == '\n' && length < sizeof request) {
        if (fread(request, 1, length, in) != length) return 0;
        request[length] = 0;
        char *field = request, *end = request + length, *fields[3];
        for (int i = 0; i < 3; i++, field += strlen(field) + 1) fields[i] = field;
        int count = atoi(fields[1 + 1]), i;
        for (i = 0; i < count && i < MAX_FIELDS - 1; i++, field += strlen(field) + 1) arguments[i] = field;
        arguments[i] = NULL;
        size_t e = 0;
        for (; e < inherited; e++) environment[e] = environ[e];
        for (; field < end && e < MAX_FIELDS - 1; field += strlen(field) + 1) environment[e++] = field;
        environment[e] = NULL;
        task_out = open_engine_fd(argv[1], fields[0]);
        task_err = open_engine_fd(argv[1], fields[1]);
        int pid = task_out < 0 || task_err < 0
            ? -errno
            : clone(task, stack + sizeof stack, CLONE_VM | CLONE_VFORK | CLONE_PARENT | SIGCHLD, NULL);
        if (pid == -1) pid = -errno;
        close(task_out);
        close(task_err);
        dprintf(3, "%d\n", pid);
    }
    return 0;
}
