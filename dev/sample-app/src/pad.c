/*
 * pad MIB SEED: writes MIB MiB of deterministic pseudo-random bytes to stdout. build.sh appends
 * them after the ELF (which still runs: the kernel maps only its segments) to make large
 * artifacts for tests. Each 1 MiB block has its own seed; one block in a hundred also depends on
 * SAMPLE_APP_VERSION, so two versions' artifacts differ in about 1% of their padding.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "version.h"

#define BLOCK (1024 * 1024)

static uint64_t splitmix64(uint64_t *state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: pad MIB SEED\n");
    return 2;
  }
  char *end = NULL;
  long mib = strtol(argv[1], &end, 10);
  if (*end != '\0' || mib < 0 || mib > 64 * 1024) {
    fprintf(stderr, "pad: MIB must be 0-65536\n");
    return 2;
  }
  uint64_t seed = strtoull(argv[2], &end, 10);
  static uint64_t block[BLOCK / sizeof(uint64_t)];
  for (long i = 0; i < mib; i++) {
    uint64_t state = seed * 0x100000001b3ULL ^ (uint64_t)i;
    if (i % 100 == 50) state ^= (uint64_t)SAMPLE_APP_VERSION << 40;
    for (size_t j = 0; j < sizeof block / sizeof block[0]; j++) block[j] = splitmix64(&state);
    if (fwrite(block, 1, sizeof block, stdout) != sizeof block) {
      perror("pad: write");
      return 1;
    }
  }
  return fflush(stdout) == 0 ? 0 : 1;
}
