/**
 * Where the learned model lives between runs: one versioned JSON file in the state directory, replaced atomically
 * (write a temporary file, fsync it, rename it over the old one, fsync the directory) so a crash or power loss
 * leaves either the old model or the new one, never half of each. A file that cannot be used (corrupt, another
 * version) is reported and not read; the learner then starts fresh and its next save replaces it.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { errnoCode, TunerError } from '../../core/errors.js';
import { MODEL_VERSION, type LearnerModel } from './model.js';

export const MODEL_FILE = 'learned-model.json';

/** A model file is a few tens of KiB; anything far larger is not one. */
const MAX_MODEL_BYTES = 16 * 1024 * 1024;

export type LoadStatus = 'missing' | 'loaded' | 'corrupt' | 'incompatible';

export interface LoadResult {
  status: LoadStatus;
  path: string;
  /** Present when status is 'loaded'. */
  model?: LearnerModel;
  /** Why the file was not used. */
  detail?: string;
}

const finite = z.number().refine(Number.isFinite, 'must be a finite number');
const u32 = z.number().int().gte(0).lte(0xffff_ffff);

const positive = finite.refine((v) => v > 0, 'must be positive');

const armSchema = z.object({
  n: z.number().int().gte(0),
  gram: z.array(finite),
  moment: z.array(finite),
  rewardSum: finite,
  rewardSqSum: finite.refine((v) => v >= 0, 'must not be negative'),
  lastReward: finite.nullable(),
  noiseVar: positive,
});

const modelSchema = z
  .object({
    version: z.literal(MODEL_VERSION),
    features: z.array(z.string().min(1)).min(1),
    prior: z.object({ weightSd: positive, noiseSd: positive }),
    updates: z.number().int().gte(0),
    updatedAt: finite.nullable(),
    prng: z.tuple([u32, u32, u32, u32]).nullable(),
    arms: z.record(z.string().min(1), armSchema),
  })
  .superRefine((m, ctx) => {
    const d = m.features.length;
    for (const [name, a] of Object.entries(m.arms)) {
      if (a.gram.length !== d * d || a.moment.length !== d) {
        ctx.addIssue({ code: 'custom', path: ['arms', name], message: `arm sized for another feature count than ${d}` });
      }
    }
    if (m.prng !== null && m.prng.every((v) => v === 0)) {
      ctx.addIssue({ code: 'custom', path: ['prng'], message: 'random generator state is all zeros' });
    }
  });

export function modelPath(stateDir: string): string {
  return path.join(path.resolve(stateDir), MODEL_FILE);
}

/** Validates a model document; throws TunerError('JOURNAL') naming what is wrong. */
export function parseModel(text: string, source = MODEL_FILE): LearnerModel {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new TunerError('JOURNAL', `read learned model ${source}: not JSON (${(e as Error).message})`, { cause: e });
  }
  const version = (doc as { version?: unknown } | null)?.version;
  if (typeof version === 'number' && version !== MODEL_VERSION) {
    throw new TunerError('JOURNAL', `read learned model ${source}: version ${version}, this agent reads version ${MODEL_VERSION}`);
  }
  const r = modelSchema.safeParse(doc);
  if (!r.success) {
    const iss = r.error.issues[0]!;
    throw new TunerError('JOURNAL', `read learned model ${source}: ${iss.path.join('.') || 'document'}: ${iss.message}`);
  }
  return r.data as LearnerModel;
}

/** The model in `stateDir`, or why there is none to use. Never throws for a bad file; throws for I/O errors. */
export function loadModel(stateDir: string): LoadResult {
  const file = modelPath(stateDir);
  let text: string;
  try {
    const buf = readFileSync(file);
    if (buf.length > MAX_MODEL_BYTES) return { status: 'corrupt', path: file, detail: `${buf.length} bytes is too large for a model` };
    text = buf.toString('utf8');
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') return { status: 'missing', path: file };
    throw new TunerError('JOURNAL', `read learned model ${file}: ${errnoCode(e) ?? String(e)}`, { cause: e });
  }
  try {
    return { status: 'loaded', path: file, model: parseModel(text, file) };
  } catch (e) {
    const msg = (e as Error).message;
    return { status: /version \d+/.test(msg) ? 'incompatible' : 'corrupt', path: file, detail: msg };
  }
}

/** Replace the model file atomically, creating the state directory (mode 0700) if needed. */
export function saveModel(stateDir: string, model: LearnerModel): void {
  const dir = path.resolve(stateDir);
  const file = modelPath(dir);
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const fd = openSync(tmp, 'w', 0o600);
    try {
      writeSync(fd, `${JSON.stringify(model)}\n`);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, file);
    // The rename is durable only once the directory entry is.
    const dfd = openSync(dir, 'r');
    try {
      fsyncSync(dfd);
    } finally {
      closeSync(dfd);
    }
  } catch (e) {
    rmSync(tmp, { force: true });
    throw new TunerError('JOURNAL', `write learned model ${file}: ${errnoCode(e) ?? String(e)}`, { cause: e });
  }
}

/** Delete the model so the learner starts fresh; true when there was one. */
export function resetModel(stateDir: string): boolean {
  const file = modelPath(stateDir);
  try {
    rmSync(file);
    return true;
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') return false;
    throw new TunerError('JOURNAL', `delete learned model ${file}: ${errnoCode(e) ?? String(e)}`, { cause: e });
  }
}

/** The three operations bound to one state directory. */
export class ModelStore {
  constructor(readonly stateDir: string) {}

  get path(): string {
    return modelPath(this.stateDir);
  }

  load(): LoadResult {
    return loadModel(this.stateDir);
  }

  save(model: LearnerModel): void {
    saveModel(this.stateDir, model);
  }

  reset(): boolean {
    return resetModel(this.stateDir);
  }
}
