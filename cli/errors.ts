// Which errors a user can fix from the command line: every UserError (a shape, a device limit, a
// checkpoint, a config or flag, data, generation), and the runtime's file errors; they print as
// one line (`error: ...`) instead of a stack trace. Everything else is a bug and keeps its stack.

import { CheckpointError, UserError } from "../engine/errors.ts";

export { CheckpointError };

/** True for errors whose message tells the user what to fix. */
export function isUserError(e: unknown): boolean {
  if (e instanceof UserError) return true;
  return e instanceof Deno.errors.NotFound || e instanceof Deno.errors.PermissionDenied ||
    e instanceof Deno.errors.NotADirectory || e instanceof Deno.errors.IsADirectory;
}
