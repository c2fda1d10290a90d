/**
 * Where a bearer token comes from in the config: inline, an environment variable or a file
 * (Kubernetes secrets). Read once at start, trimmed, never shown.
 */
import process from "node:process";
import { readFileSync } from "node:fs";
import * as v from "valibot";
import type { Assert, SameType } from "../util/same_type.ts";

/** Shorter tokens are refused: a guessable token guards nothing. */
export const MIN_TOKEN_LENGTH = 8;

/** Where a token is written in the config: `{env: VARIABLE}`, `{file: PATH}` or `{value: TOKEN}`. */
export type TokenSource = { env: string } | { file: string } | { value: string };

/** The schema as valibot infers it: `TokenSourceSchema` is typed by hand (JSR), and checked against it below. */
const tokenSourceSchema = v.pipe(
  v.union([
    v.strictObject({ env: v.pipe(v.string("a variable name"), v.nonEmpty("a variable name")) }),
    v.strictObject({ file: v.pipe(v.string("a file path"), v.nonEmpty("a file path")) }),
    v.strictObject({ value: v.pipe(v.string("a token"), v.minLength(MIN_TOKEN_LENGTH, `a token of ${MIN_TOKEN_LENGTH} or more characters`)) }),
  ], `{env: VARIABLE} or {file: PATH} or {value: TOKEN of ${MIN_TOKEN_LENGTH} or more characters}`),
  v.rawTransform(({ dataset, addIssue, NEVER }) => {
    const source = dataset.value;
    let token: string | undefined;
    // Trimmed wherever it comes from: a Kubernetes secret made from a file that `echo` wrote ends
    // in a newline, and a header token never holds one, so an untrimmed token could never match.
    if ("env" in source) token = process.env[source.env]?.trim();
    else if ("file" in source) {
      try {
        token = readFileSync(source.file, "utf8").trim();
      } catch (error) {
        addIssue({ message: `a readable token file (${(error as { code?: string }).code ?? error})` });
        return NEVER;
      }
    } else token = source.value.trim();
    if (!token || token.length < MIN_TOKEN_LENGTH) {
      // Name where it was looked for, never what it holds (not even its length).
      const where = "env" in source
        ? `the environment variable ${source.env}, which is ${token === undefined ? "unset" : token ? "shorter" : "empty"}`
        : "file" in source
        ? `the file ${source.file}, which is ${token ? "shorter" : "empty"}`
        : "the value given, once trimmed";
      addIssue({ message: `a token of ${MIN_TOKEN_LENGTH} or more characters in ${where}` });
      return NEVER;
    }
    if (/\s/.test(token)) {
      addIssue({ message: "a token without blanks inside (Authorization: Bearer cannot carry them)" });
      return NEVER;
    }
    return token;
  }),
);

/** Where a token comes from: inline, an environment variable or a file (Kubernetes secrets). Outputs the token. */
export const TokenSourceSchema: v.GenericSchema<TokenSource, string> = tokenSourceSchema;
type _Input = Assert<SameType<v.InferInput<typeof tokenSourceSchema>, TokenSource>>;
type _Output = Assert<SameType<v.InferOutput<typeof tokenSourceSchema>, string>>;
