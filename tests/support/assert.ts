/**
 * Test assertions. `@std/assert` lives on JSR, which this network cannot reach, so the tests use
 * Node's `node:assert/strict` through these thin, typed wrappers with the familiar names.
 *
 * @module
 */
import assert from "node:assert/strict";

/** Asserts deep equality. */
export function assertEquals<T>(actual: T, expected: T, msg?: string): void {
  assert.deepStrictEqual(actual, expected, msg);
}

/** Asserts deep inequality. */
export function assertNotEquals<T>(actual: T, expected: T, msg?: string): void {
  assert.notDeepStrictEqual(actual, expected, msg);
}

/** Asserts a truthy value. */
export function assert_(cond: unknown, msg?: string): asserts cond {
  assert.ok(cond, msg);
}
export { assert_ as assert };

/** Asserts that `text` contains `part`. */
export function assertStringIncludes(text: string, part: string, msg?: string): void {
  assert.ok(
    text.includes(part),
    msg ?? `expected ${JSON.stringify(text)} to include ${JSON.stringify(part)}`,
  );
}

// deno-lint-ignore no-explicit-any
type ErrorClass = new (...args: any[]) => Error;

/** Checks a caught error against the expected class and message part; returns it. */
function expectError(err: unknown, cls?: ErrorClass, includes?: string): Error {
  if (cls && !(err instanceof cls)) {
    throw new assert.AssertionError({ message: `expected ${cls.name}, got ${err}` });
  }
  if (includes && !(err instanceof Error && err.message.includes(includes))) {
    throw new assert.AssertionError({
      message: `expected message to include ${JSON.stringify(includes)}, got ${
        JSON.stringify(String((err as Error)?.message))
      }`,
    });
  }
  return err as Error;
}

/** Asserts that fn throws an error of class `cls` whose message includes `includes`. */
export function assertThrows(fn: () => unknown, cls?: ErrorClass, includes?: string): Error {
  try {
    fn();
  } catch (err) {
    return expectError(err, cls, includes);
  }
  throw new assert.AssertionError({ message: "expected function to throw" });
}

/** Async variant of {@link assertThrows}. */
export async function assertRejects(
  fn: () => Promise<unknown>,
  cls?: ErrorClass,
  includes?: string,
): Promise<Error> {
  try {
    await fn();
  } catch (err) {
    return expectError(err, cls, includes);
  }
  throw new assert.AssertionError({ message: "expected promise to reject" });
}
