// Errors the data layer throws: one line each, naming the file, dataset or character at fault
// and what to do about it.

import { UserError } from "../engine/errors.ts";

/** A dataset, token cache or batch request cannot be served: missing, empty or too short. */
export class DataError extends UserError {
  /** Always "DataError". */
  override name = "DataError";
}

/** Text cannot be encoded (a character outside the vocabulary) or ids cannot be decoded. */
export class TokenizerError extends DataError {
  /** Always "TokenizerError". */
  override name = "TokenizerError";
}
