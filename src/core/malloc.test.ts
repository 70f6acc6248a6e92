import { describe, expect, it } from 'vitest';
import { capMallocArenas, trimMalloc } from './malloc.js';

describe('allocator arenas', () => {
  it('leaves an operator-chosen arena count alone', () => {
    expect(capMallocArenas({ MALLOC_ARENA_MAX: '4' })).toBe(false);
    expect(capMallocArenas({ GLIBC_TUNABLES: 'glibc.malloc.arena_max=4' })).toBe(false);
  });

  it('caps the arenas on glibc and trims without failing', () => {
    expect(capMallocArenas({})).toBe(true);
    expect(() => trimMalloc()).not.toThrow();
  });
});
