/**
 * Regenerates what the configuration's declaration (src/config/schema.ts) documents: the key reference tables in
 * src/config/README.md and docs/config.schema.json. Run after adding or changing a setting:
 *
 *   npm run gen:config-docs
 *
 * src/config/reference.test.ts fails while either is out of date.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CONFIG_README, CONFIG_SCHEMA_JSON, configJsonSchemaText, renderReadme } from '../src/config/reference.js';

const root = join(import.meta.dirname, '..');

const readme = join(root, CONFIG_README);
writeFileSync(readme, renderReadme(readFileSync(readme, 'utf8')));
writeFileSync(join(root, CONFIG_SCHEMA_JSON), configJsonSchemaText());
console.log(`wrote ${CONFIG_README} and ${CONFIG_SCHEMA_JSON}`);
