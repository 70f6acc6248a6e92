// SPDX-License-Identifier: MIT
/*
 * bench-threads: a process with N threads that sleep until it is killed, so the agent-cost benchmark runs on a
 * host with many tasks (per-task kernel state, /proc walks and the scheduler hook all see them). Small stacks keep
 * 10k threads to a few tens of MB. Prints "ready N" once every thread exists.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void *sleeper(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return NULL;
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? strtol(argv[1], NULL, 10) : 10000;
	pthread_attr_t attr;
	pthread_t t;
	long i;
	int err;

	if (n < 0 || n > 1000000) {
		fprintf(stderr, "usage: bench-threads [N]   (0..1000000 sleeping threads)\n");
		return 2;
	}
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 64 * 1024);
	for (i = 0; i < n; i++) {
		err = pthread_create(&t, &attr, sleeper, NULL);
		if (err) {
			fprintf(stderr, "bench-threads: created %ld of %ld threads: %s\n", i, n, strerror(err));
			return 1;
		}
	}
	printf("ready %ld\n", n);
	fflush(stdout);
	for (;;)
		pause();
}
