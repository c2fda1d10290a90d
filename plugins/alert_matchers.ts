/**
 * Label matchers in Prometheus/Alertmanager syntax: `severity="critical"`,
 * `team!="db"`, `alertname=~"Node.*"`, `env!~"dev|test"`; quotes are
 * optional for plain values. Regexes are anchored, as in Prometheus.
 */

export interface Matcher {
  readonly label: string;
  readonly op: "=" | "!=" | "=~" | "!~";
  readonly value: string;
  readonly text: string;
  matches(labels: Readonly<Record<string, string>>): boolean;
}

/** The forms a matcher may take, for error messages. */
export const MATCHER_FORMS = 'label="value", label!="value", label=~"regex" or label!~"regex"';

/**
 * A matcher that cannot be used. `allowed` says what would be, so config
 * errors read "got ...; allowed: ..." like every other config error.
 */
export class MatcherError extends Error {
  override readonly name = "MatcherError";
  constructor(message: string, readonly allowed: string) {
    super(message);
  }
}

const MATCHER = /^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*(?:"((?:[^"\\]|\\.)*)"|([^"\s]*))\s*$/;

/** Parses one matcher; throws a MatcherError whose message says what is allowed. */
export function parseMatcher(text: string): Matcher {
  const match = MATCHER.exec(text);
  if (!match) {
    throw new MatcherError(`not a label matcher: ${JSON.stringify(text)}; use ${MATCHER_FORMS}`, `a label matcher: ${MATCHER_FORMS}`);
  }
  const [, label, op, quoted, bare] = match as unknown as [string, string, Matcher["op"], string | undefined, string | undefined];
  const value = quoted !== undefined ? unquote(quoted, text) : bare ?? "";
  let regex: RegExp | undefined;
  if (op === "=~" || op === "!~") {
    try {
      regex = new RegExp(`^(?:${value})$`);
    } catch (error) {
      // The engine's own words differ between runtimes; the part after the pattern says what is wrong.
      const detail = (error as Error).message.replace(/^Invalid regular expression: (?:\/.*\/[a-z]*: )?/s, "");
      throw new MatcherError(`bad regex in matcher ${JSON.stringify(text)}: ${detail}`, `a label matcher with a valid regex (${detail})`);
    }
  }
  // A missing label matches "" (Prometheus semantics): severity!="critical" matches an alert without severity.
  const test = (labels: Readonly<Record<string, string>>) => {
    const actual = labels[label] ?? "";
    switch (op) {
      case "=":
        return actual === value;
      case "!=":
        return actual !== value;
      case "=~":
        return regex!.test(actual);
      case "!~":
        return !regex!.test(actual);
    }
  };
  return { label, op, value, text: `${label}${op}${JSON.stringify(value)}`, matches: test };
}

/**
 * A quoted value's escapes: `\"`, `\\`, `\n`, `\t` and `\uXXXX`. A regex
 * escape like `\d` must be written `\\d`, as in PromQL; JSON.parse's own
 * error says that differently on each runtime, so say it here.
 */
function unquote(quoted: string, text: string): string {
  try {
    return JSON.parse(`"${quoted}"`) as string;
  } catch {
    const rule = 'a quoted value whose only escapes are \\" \\\\ \\n \\t and \\uXXXX (write a regex \\d as \\\\d)';
    throw new MatcherError(`bad escape in matcher ${JSON.stringify(text)}; allowed: ${rule}`, rule);
  }
}
