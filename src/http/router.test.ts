import { describe, expect, it } from 'vitest';
import { Router, type Route } from './router.js';
import { ROUTES } from './routes.js';

const noop = (): void => {};
const route = (over: Partial<Route> & Pick<Route, 'path'>): Route => ({ method: 'GET', access: 'read', handler: noop, ...over });

describe('router', () => {
  it('refuses a table that declares a method and path twice', () => {
    expect(() => new Router([route({ path: '/a' }), route({ path: '/a' })])).toThrow(/GET \/a is declared twice/);
    expect(() => new Router(ROUTES)).not.toThrow();
  });

  it('matches literal paths exactly and parameters as whole segments, still encoded', () => {
    const r = new Router([route({ path: '/api/x' }), route({ method: 'POST', path: '/api/x/:id/go', access: 'write' })]);
    expect(r.match('/api/x')?.rawParams).toEqual({});
    expect(r.match('/api/x/a%2Fb/go')?.rawParams).toEqual({ id: 'a%2Fb' });
    for (const miss of ['/api/x/', '/api/x//go', '/api/x/a/b/go', '/api/x/a/go/', '/api/y']) expect(r.match(miss), miss).toBeUndefined();
  });

  it('names the parameter in a malformed-encoding 400, and lists HEAD with GET in Allow', () => {
    const r = new Router([route({ path: '/d/:id', params: { id: 'decision id' } }), route({ method: 'POST', path: '/d/:id' })]);
    const found = r.match('/d/%E0%A4%A')!;
    expect(found.endpoint.allow()).toEqual(['GET', 'HEAD', 'POST']);
    expect(() => found.endpoint.decodeParams(found.rawParams)).toThrow(
      expect.objectContaining({ status: 400, message: 'parse decision id: malformed percent-encoding' }),
    );
  });

  it('opens a path without the token only when every route on it allows that', () => {
    const r = new Router([
      route({ path: '/p', access: 'probe' }),
      route({ path: '/m', access: 'scrape' }),
      route({ path: '/mixed', access: 'probe' }),
      route({ method: 'POST', path: '/mixed', access: 'write' }),
    ]);
    expect(r.match('/p')?.endpoint.opensWithoutToken(false)).toBe(true);
    expect(r.match('/m')?.endpoint.opensWithoutToken(false)).toBe(false);
    expect(r.match('/m')?.endpoint.opensWithoutToken(true)).toBe(true);
    expect(r.match('/mixed')?.endpoint.opensWithoutToken(true)).toBe(false);
  });
});
