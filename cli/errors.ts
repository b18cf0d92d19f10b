// Which errors a user can fix from the command line: they print as one line (`error: ...`)
// instead of a stack trace. Everything else is a bug and keeps its stack.

/** A checkpoint cannot be used: missing from --out-dir, corrupt, or for another tokenizer. */
export { CheckpointError } from "../models/checkpoint_check.ts";

// By name, so that layers the CLI does not otherwise import need not be loaded to classify.
const USER_ERRORS = new Set([
  "FlagError",
  "CheckpointError",
  "DataError",
  "TokenizerError",
  "ConfigError",
  "SafetensorsError",
  "StateDictError",
  "BackendUnavailableError",
  "DeviceLimitError",
  "GenerationError",
  "NotFound",
  "PermissionDenied",
]);

/** True for errors whose message tells the user what to fix. */
export function isUserError(e: unknown): boolean {
  return e instanceof Error && USER_ERRORS.has(e.name);
}
