/** Token loading against real files of various modes and contents; constant-time comparison by property. */
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TunerError, type TunerErrorCode } from '../core/errors.js';
import { loadToken, MIN_TOKEN_LENGTH, tokenEquals } from './token.js';

let base: string;
let seq = 0;
beforeAll(() => {
  if (process.getuid?.() !== 0) throw new Error('token tests check root ownership and must run as root');
  base = mkdtempSync(join(tmpdir(), 'token-'));
});
afterAll(() => rmSync(base, { recursive: true, force: true }));

function tokenFile(content: string | Buffer, mode = 0o600, parent = base): string {
  const f = join(parent, `token${seq++}`);
  writeFileSync(f, content);
  chmodSync(f, mode);
  return f;
}

function expectRefused(fn: () => unknown, code: TunerErrorCode, ...parts: string[]): void {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err, 'expected a refusal').toBeInstanceOf(TunerError);
  expect((err as TunerError).code).toBe(code);
  for (const p of parts) expect((err as TunerError).message).toContain(p);
}

const GOOD = 'c2VjcmV0LXRva2VuLWZvci10ZXN0cw==';

describe('loadToken', () => {
  it('reads a 0600 root-owned token and drops the trailing newline', () => {
    expect(loadToken(tokenFile(`${GOOD}\n`))).toBe(GOOD);
    expect(loadToken(tokenFile(`  ${GOOD}\r\n\n`, 0o400))).toBe(GOOD);
  });

  it('refuses a token file readable by group or others, with the fix', () => {
    const g = tokenFile(GOOD, 0o640);
    expectRefused(() => loadToken(g), 'PERMISSION', g, 'readable by group', 'mode 0640', `chmod 600 ${g}`);
    const o = tokenFile(GOOD, 0o604);
    expectRefused(() => loadToken(o), 'PERMISSION', 'readable by others', `chmod 600 ${o}`);
  });

  it('refuses a token file under a directory others can write to', () => {
    const d = join(base, `open${seq++}`);
    mkdirSync(d);
    chmodSync(d, 0o777);
    expectRefused(() => loadToken(tokenFile(GOOD, 0o600, d)), 'PERMISSION', `chmod go-w ${d}`);
  });

  it('refuses an empty or whitespace-only token, saying how to make one', () => {
    for (const content of ['', '\n', '   \n\t']) {
      const f = tokenFile(content);
      expectRefused(() => loadToken(f), 'CONFIG_INVALID', 'empty', 'head -c 32 /dev/urandom | base64', f);
    }
  });

  it(`refuses a token shorter than ${MIN_TOKEN_LENGTH} characters and accepts exactly ${MIN_TOKEN_LENGTH}`, () => {
    const short = 'x'.repeat(MIN_TOKEN_LENGTH - 1);
    expectRefused(() => loadToken(tokenFile(short)), 'CONFIG_INVALID', `${MIN_TOKEN_LENGTH - 1} characters`, 'urandom');
    expect(loadToken(tokenFile('x'.repeat(MIN_TOKEN_LENGTH)))).toBe('x'.repeat(MIN_TOKEN_LENGTH));
  });

  it('refuses a token with inner whitespace or control bytes, and an oversized file', () => {
    expectRefused(() => loadToken(tokenFile(`${GOOD} ${GOOD}`)), 'CONFIG_INVALID', 'visible ASCII');
    expectRefused(() => loadToken(tokenFile(`${GOOD}\n${GOOD}`)), 'CONFIG_INVALID', 'one line');
    expectRefused(() => loadToken(tokenFile(Buffer.from([0x41, 0, 0x42, ...Buffer.from(GOOD)]))), 'CONFIG_INVALID');
    expectRefused(() => loadToken(tokenFile('a'.repeat(5000))), 'CONFIG_INVALID', 'larger than 4096');
  });

  it('refuses a missing file and a directory', () => {
    expectRefused(() => loadToken(join(base, 'missing')), 'CONFIG_INVALID', 'does not exist');
    const d = join(base, `dir${seq++}`);
    mkdirSync(d, { mode: 0o700 });
    expectRefused(() => loadToken(d), 'CONFIG_INVALID', 'not a regular file');
  });

  it('never throws anything but TunerError, whatever the mode', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0o7777 }), (mode) => {
        const f = tokenFile(GOOD, mode);
        try {
          expect(loadToken(f)).toBe(GOOD);
          expect(mode & 0o066).toBe(0);
        } catch (e) {
          if (!(e instanceof TunerError)) throw e;
          expect(e.code).toBe('PERMISSION');
          expect(mode & 0o066).not.toBe(0);
        }
      }),
      { numRuns: 200 },
    );
  });
});

describe('tokenEquals', () => {
  it('is === for arbitrary strings, lone surrogates included', () => {
    const str = fc.string({ unit: 'binary', maxLength: 64 });
    fc.assert(fc.property(str, str, (a, b) => tokenEquals(a, b) === (a === b)));
    fc.assert(fc.property(str, (a) => tokenEquals(a, a)));
    // Derived pairs that differ in one place: the case a random pair almost never hits.
    fc.assert(
      fc.property(str, fc.nat(), fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }), (a, at, ch) => {
        const i = a.length === 0 ? 0 : at % a.length;
        const b = a.slice(0, i) + ch + a.slice(i + 1);
        return tokenEquals(a, b) === (a === b);
      }),
    );
  });

  it('tells apart strings that UTF-8 would merge', () => {
    // Both lone surrogates encode to the same U+FFFD bytes in UTF-8.
    expect(Buffer.from('\uD800').equals(Buffer.from('\uDBFF'))).toBe(true);
    expect(tokenEquals('\uD800', '\uDBFF')).toBe(false);
  });

  it('compares tokens of different lengths without throwing', () => {
    expect(tokenEquals(GOOD, `${GOOD}x`)).toBe(false);
    expect(tokenEquals('', GOOD)).toBe(false);
  });
});
