// Runs a .yarn file with yarn-bound (a Yarn Spinner interpreter for JavaScript) and plays every path.
// Usage: node yarn_walk.js FILE.yarn START_TITLE  (NODE_PATH must hold yarn-bound). Prints one JSON object:
// {errors, paths: [[{line, character, hashtags} | {choice, character}], ..., "END"]}. Exit 1 on any error.
"use strict";
const fs = require("fs");
let YarnBound = require("yarn-bound");
YarnBound = YarnBound.default || YarnBound;

const MAX_PATHS = 100000;
const MAX_STEPS = 10000;

function character(result) {
  const mark = (result.markup || []).find((m) => m.name === "character");
  return mark ? mark.properties.name : null;
}

// Plays from the start, taking `picks` at successive option sets; returns the events and the options reached.
function play(dialogue, start, picks) {
  const runner = new YarnBound({ dialogue, startAt: start });
  const events = [];
  let used = 0;
  for (let steps = 0; steps < MAX_STEPS; steps++) {
    const result = runner.currentResult;
    if (result instanceof YarnBound.OptionsResult) {
      if (used === picks.length) {
        return { events, options: result.options };
      }
      const option = result.options[picks[used]];
      events.push({ choice: option.text, character: character(option) });
      runner.advance(picks[used]);
      used += 1;
      continue;
    }
    if (result instanceof YarnBound.TextResult) {
      events.push({ line: result.text, character: character(result), hashtags: result.hashtags || [] });
    } else if (result instanceof YarnBound.CommandResult) {
      events.push({ command: result.command });
    }
    if (result.isDialogueEnd) {
      events.push("END");
      return { events, options: null };
    }
    runner.advance();
  }
  throw new Error("dialogue did not end");
}

const dialogue = fs.readFileSync(process.argv[2], "utf-8");
const start = process.argv[3];
try {
  const paths = [];
  const stack = [[]];
  while (stack.length > 0) {
    const picks = stack.pop();
    const { events, options } = play(dialogue, start, picks);
    if (options === null) {
      paths.push(events);
      if (paths.length > MAX_PATHS) throw new Error("too many paths");
      continue;
    }
    for (let i = options.length - 1; i >= 0; i--) stack.push(picks.concat([i]));
  }
  process.stdout.write(JSON.stringify({ errors: [], paths }));
} catch (err) {
  process.stdout.write(JSON.stringify({ errors: [String(err && err.stack ? err.stack : err)], paths: [] }));
  process.exit(1);
}
