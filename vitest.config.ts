import { defineConfig } from 'vitest/config';

// Two projects on the host: pure logic runs in parallel and unprivileged; kernel tests touch shared host state
// (scheduler latency, cgroups, BPF programs) and run one file at a time so they do not disturb each other. Tests that
// need root without touching the kernel (`*.root.test.ts`: chown to other uids) run with the kernel ones, as root.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          // Property tests run thousands of cases; a loaded CI machine must not turn that into a timeout.
          testTimeout: 30_000,
          include: ['src/**/*.test.ts'],
          exclude: ['src/**/*.kernel.test.ts', 'src/**/*.root.test.ts'],
        },
      },
      {
        test: {
          name: 'kernel',
          include: ['src/**/*.kernel.test.ts', 'src/**/*.root.test.ts', 'tests/**/*.kernel.test.ts', 'tools/**/*.test.ts'],
          fileParallelism: false,
          testTimeout: 120_000,
          hookTimeout: 60_000,
        },
      },
      {
        // Run inside a freshly booted VM per kernel (scripts/vm/test-vm.sh, `npm run test:vm`): real cgroup v2, other
        // kernels. The VM emulates its CPUs (TCG), several times slower than the host, hence the long timeouts.
        test: {
          name: 'vm',
          include: ['tests/vm/**/*.vm.test.ts'],
          exclude: ['tests/vm/**/numa*.vm.test.ts'],
          fileParallelism: false,
          testTimeout: 600_000,
          hookTimeout: 300_000,
        },
      },
      {
        // The same, in a guest with two NUMA nodes (test-vm.sh boots one per kernel beside the one-node guest): what
        // needs a second node cannot run in the one-node boot, and the rest gains nothing from a second.
        test: {
          name: 'vm-numa',
          include: ['tests/vm/**/numa*.vm.test.ts'],
          fileParallelism: false,
          testTimeout: 600_000,
          hookTimeout: 300_000,
        },
      },
    ],
  },
});
