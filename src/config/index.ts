/**
 * The configuration: one YAML file, validated once by one schema into the camelCase `Config` the agent runs on.
 */
export { loadConfig, parseConfig, ConfigError, MAX_CONFIG_BYTES, type ConfigIssue } from './load.js';
export { BUILT_IN_SOURCE, DEFAULTS, defaultConfig } from './defaults.js';
export { LIMITS } from './schema.js';
export type * from './types.js';
