/**
 * Addresses the HTTP server deals in: the `--listen` value, which hosts count as loopback, and the host a request's
 * Host header names. Loopback decides the server's whole access policy (see pipeline.ts), so it is decided here once.
 */
import { isIP } from 'node:net';
import { TunerError } from '../core/errors.js';

export const DEFAULT_LISTEN = '127.0.0.1:9479';

export interface ListenAddress {
  host: string;
  port: number;
}

/** Parses `HOST:PORT` / `[V6]:PORT`. */
export function parseListen(listen: string): ListenAddress {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(listen.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) {
    throw new TunerError(
      'CONFIG_INVALID',
      `parse http listen address "${listen}": expected HOST:PORT or [IPV6]:PORT with a port 0-65535 — fix: pass e.g. --listen ${DEFAULT_LISTEN}`,
    );
  }
  const host = m[1] ?? m[2] ?? '';
  if (m[1] !== undefined && isIP(host) !== 6) {
    throw new TunerError('CONFIG_INVALID', `parse http listen address "${listen}": "${host}" is not an IPv6 address — fix: write an IPv6 address in brackets, e.g. [::1]:9479`);
  }
  return { host, port };
}

/** Loopback only: 127.0.0.0/8, ::1 (also v4-mapped) and the name localhost. Any other name counts as remote. */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase();
  if (h === 'localhost' || h === '::1' || h === '0:0:0:0:0:0:0:1') return true;
  const v4 = h.startsWith('::ffff:') ? h.slice(7) : h;
  return isIP(v4) === 4 && v4.startsWith('127.');
}

/** The host part of a Host header: `name:port`, `[v6]:port` or either without the port. */
export function hostOfHeader(hostHeader: string): string {
  const h = hostHeader.trim();
  if (h.startsWith('[')) return h.slice(1, h.indexOf(']') === -1 ? undefined : h.indexOf(']'));
  const colon = h.lastIndexOf(':');
  return colon === -1 ? h : h.slice(0, colon);
}
