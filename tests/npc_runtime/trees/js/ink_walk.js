// Compiles an .ink file with inkjs (the official ink compiler's JavaScript port) and plays every path.
// Usage: node ink_walk.js FILE.ink  (NODE_PATH must hold inkjs). Prints one JSON object:
// {errors, warnings, paths: [[{line, tags} | {choice}], ..., "END"]}. Exit 1 when compilation fails.
"use strict";
const fs = require("fs");
const { Compiler, CompilerOptions } = require("inkjs/full");

const MAX_PATHS = 100000;

function compile(source) {
  const errors = [];
  const warnings = [];
  const handler = (message, type) => {
    if (type === 2) errors.push(message);
    else if (type === 1) warnings.push(message);
  };
  const options = new CompilerOptions(null, [], false, handler, null);
  let story = null;
  try {
    story = new Compiler(source, options).Compile();
  } catch (err) {
    if (errors.length === 0) errors.push(String(err && err.message ? err.message : err));
  }
  return { story, errors, warnings };
}

function walk(story) {
  const paths = [];
  const stack = [{ state: story.state.ToJson(), events: [] }];
  while (stack.length > 0) {
    const { state, events } = stack.pop();
    story.state.LoadJson(state);
    const out = events.slice();
    while (story.canContinue) {
      const text = story.Continue();
      out.push({ line: text.replace(/\n$/, ""), tags: story.currentTags.slice() });
    }
    const choices = story.currentChoices;
    if (choices.length === 0) {
      out.push("END");
      paths.push(out);
      if (paths.length > MAX_PATHS) throw new Error("too many paths");
      continue;
    }
    const here = story.state.ToJson();
    // push in reverse so that paths come out in choice order (depth first)
    for (let i = choices.length - 1; i >= 0; i--) {
      story.state.LoadJson(here);
      const choice = story.currentChoices[i];
      const text = choice.text;
      story.ChooseChoiceIndex(i);
      stack.push({ state: story.state.ToJson(), events: out.concat([{ choice: text }]) });
    }
  }
  return paths;
}

const source = fs.readFileSync(process.argv[2], "utf-8");
const { story, errors, warnings } = compile(source);
if (story === null || errors.length > 0) {
  process.stdout.write(JSON.stringify({ errors, warnings, paths: [] }));
  process.exit(1);
}
process.stdout.write(JSON.stringify({ errors, warnings, paths: walk(story) }));
