/**
 * Compile-time checks, for types written out by hand beside a schema that valibot could infer
 * them from: JSR wants exported schemas typed explicitly, and these keep the two from drifting.
 *
 *   type _Options = Assert<SameType<v.InferOutput<typeof schema>, ParsedOptions>>;
 */

/** `true` when `A` and `B` are the same type (not merely assignable to each other), else `false`. */
export type SameType<A, B> = (<T>() => T extends A ? 1 : 2) extends (<T>() => T extends B ? 1 : 2) ? true : false;

/** A type error unless `T` is `true`. */
export type Assert<T extends true> = T;
