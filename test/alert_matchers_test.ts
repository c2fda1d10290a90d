// Label matchers in Alertmanager's syntax: parsing, semantics and the errors users see.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { MATCHER_FORMS, MatcherError, parseMatcher } from "../plugins/alert_matchers.ts";

const FORMS = 'label="value", label!="value", label=~"regex" or label!~"regex"';

describe("parseMatcher", () => {
  test("parses the four operators, quoted and unquoted", () => {
    const cases: [string, string, string, string][] = [
      ['severity="critical"', "severity", "=", "critical"],
      ["severity=critical", "severity", "=", "critical"],
      ['team!="db"', "team", "!=", "db"],
      ["team!=db", "team", "!=", "db"],
      ['alertname=~"Node.*"', "alertname", "=~", "Node.*"],
      ["alertname=~Node.*", "alertname", "=~", "Node.*"],
      ['env!~"dev|test"', "env", "!~", "dev|test"],
      ["env!~dev|test", "env", "!~", "dev|test"],
      ['  severity  =  "critical"  ', "severity", "=", "critical"],
      ['_private_1="x"', "_private_1", "=", "x"],
      ['severity=""', "severity", "=", ""],
    ];
    for (const [text, label, op, value] of cases) {
      const matcher = parseMatcher(text);
      assert.deepEqual({ label: matcher.label, op: matcher.op, value: matcher.value }, { label, op, value }, text);
    }
  });

  test("quoted values take escapes: \\\" \\\\ \\n \\t \\u", () => {
    assert.equal(parseMatcher(String.raw`summary="say \"hi\""`).value, 'say "hi"');
    assert.equal(parseMatcher(String.raw`path="C:\\temp"`).value, "C:\\temp");
    assert.equal(parseMatcher(String.raw`text="a\nb\tc"`).value, "a\nb\tc");
    assert.equal(parseMatcher(String.raw`letter="\u0041"`).value, "A");
    // A regex escape is written doubled, as in PromQL.
    const digits = parseMatcher(String.raw`instance=~"node\\d+"`);
    assert.equal(digits.value, String.raw`node\d+`);
    assert.equal(digits.matches({ instance: "node12" }), true);
    assert.equal(digits.matches({ instance: "nodeX" }), false);
  });

  test("text is the canonical form", () => {
    assert.equal(parseMatcher("severity=critical").text, 'severity="critical"');
    assert.equal(parseMatcher(' env !~ "dev|test" ').text, 'env!~"dev|test"');
    assert.equal(parseMatcher(String.raw`summary="say \"hi\""`).text, String.raw`summary="say \"hi\""`);
  });

  test("= and != compare whole values; a missing label counts as empty", () => {
    const critical = parseMatcher('severity="critical"');
    assert.equal(critical.matches({ severity: "critical" }), true);
    assert.equal(critical.matches({ severity: "Critical" }), false);
    assert.equal(critical.matches({ severity: "critical " }), false);
    assert.equal(critical.matches({}), false);

    const notNone = parseMatcher('severity!="none"');
    assert.equal(notNone.matches({ severity: "warning" }), true);
    assert.equal(notNone.matches({ severity: "none" }), false);
    assert.equal(notNone.matches({}), true, "a missing label is not none");

    const empty = parseMatcher('severity=""');
    assert.equal(empty.matches({}), true, "a missing label equals the empty string");
    assert.equal(empty.matches({ severity: "" }), true);
    assert.equal(empty.matches({ severity: "x" }), false);
  });

  test("regexes are anchored at both ends", () => {
    const crit = parseMatcher('severity=~"crit"');
    assert.equal(crit.matches({ severity: "crit" }), true);
    assert.equal(crit.matches({ severity: "critical" }), false);
    assert.equal(crit.matches({ severity: "supercrit" }), false);

    const alternatives = parseMatcher('env=~"dev|test"');
    assert.equal(alternatives.matches({ env: "dev" }), true);
    assert.equal(alternatives.matches({ env: "test" }), true);
    // Without the group, ^dev|test$ would match "devops".
    assert.equal(alternatives.matches({ env: "devops" }), false);
    assert.equal(alternatives.matches({ env: "pretest" }), false);

    const notDev = parseMatcher('env!~"dev|test"');
    assert.equal(notDev.matches({ env: "prod" }), true);
    assert.equal(notDev.matches({ env: "dev" }), false);
    assert.equal(notDev.matches({ env: "devops" }), true);
    assert.equal(notDev.matches({}), true);

    const anything = parseMatcher('team=~".*"');
    assert.equal(anything.matches({}), true, "a missing label is the empty string, which .* matches");
    const something = parseMatcher('team=~".+"');
    assert.equal(something.matches({}), false);
    assert.equal(something.matches({ team: "db" }), true);
  });

  test("bad matchers throw a message that lists the allowed forms", () => {
    assert.equal(MATCHER_FORMS, FORMS);
    for (const text of ["", "severity", 'severity=="critical"', '="critical"', '1abc="x"', 'severity="unterminated', 'sev-erity="x"', 'severity="a" extra', "severity=two words"]) {
      assert.throws(() => parseMatcher(text), (error: unknown) => {
        assert.ok(error instanceof MatcherError, `${text}: a MatcherError`);
        assert.equal(error.message, `not a label matcher: ${JSON.stringify(text)}; use ${FORMS}`);
        assert.equal(error.allowed, `a label matcher: ${FORMS}`);
        return true;
      }, text);
    }
  });

  test("a bad regex says so, without the engine's preamble", () => {
    for (const text of ['severity=~"("', 'severity!~"*"', 'severity=~"[z-a]"']) {
      assert.throws(() => parseMatcher(text), (error: unknown) => {
        assert.ok(error instanceof MatcherError);
        const prefix = `bad regex in matcher ${JSON.stringify(text)}: `;
        assert.ok(error.message.startsWith(prefix), error.message);
        const detail = error.message.slice(prefix.length);
        assert.ok(detail.length > 0, "says what is wrong");
        assert.doesNotMatch(detail, /Invalid regular expression/, "without the engine's preamble");
        assert.equal(error.allowed, `a label matcher with a valid regex (${detail})`);
        return true;
      }, text);
    }
    // The same characters are fine as a plain value: only =~ and !~ compile a regex.
    assert.equal(parseMatcher('severity="("').matches({ severity: "(" }), true);
  });

  test("a bad escape in a quoted value says how to write it", () => {
    const text = String.raw`instance=~"node\d+"`;
    assert.throws(() => parseMatcher(text), (error: unknown) => {
      assert.ok(error instanceof MatcherError);
      assert.equal(
        error.message,
        `bad escape in matcher ${JSON.stringify(text)}; allowed: a quoted value whose only escapes are \\" \\\\ \\n \\t and \\uXXXX (write a regex \\d as \\\\d)`,
      );
      return true;
    });
  });
});
