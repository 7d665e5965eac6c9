// The code editor: CodeMirror 6 with the language chosen from the
// webtask's meta, ctx. completion and a syntax linter.
import { EditorView, keymap, lineNumbers, highlightActiveLine, highlightActiveLineGutter, drawSelection } from '@codemirror/view';
import { EditorState, Compartment } from '@codemirror/state';
import { defaultKeymap, history, historyKeymap, indentWithTab } from '@codemirror/commands';
import { syntaxHighlighting, defaultHighlightStyle, bracketMatching, indentOnInput, foldGutter } from '@codemirror/language';
import { searchKeymap, highlightSelectionMatches } from '@codemirror/search';
import { autocompletion, completionKeymap, closeBrackets, closeBracketsKeymap } from '@codemirror/autocomplete';
import { linter, lintGutter, lintKeymap } from '@codemirror/lint';
import { javascript, javascriptLanguage } from '@codemirror/lang-javascript';
import { json, jsonParseLinter } from '@codemirror/lang-json';
import { html } from '@codemirror/lang-html';
import { oneDark } from '@codemirror/theme-one-dark';

// languageFor picks the mode: wt-compiler names JSON or HTML/Mustache
// compilers; wt-language names TypeScript; JavaScript otherwise.
export function languageFor(meta) {
  const compiler = (meta['wt-compiler'] || '').toLowerCase();
  const lang = (meta['wt-language'] || '').toLowerCase();
  if (compiler.includes('json')) return { name: 'json', ext: json() };
  if (compiler.includes('html') || compiler.includes('mustache')) return { name: 'html', ext: html() };
  if (lang === 'typescript' || lang === 'ts' || compiler.includes('typescript')) {
    return { name: 'typescript', ext: javascript({ typescript: true }) };
  }
  return { name: 'javascript', ext: javascript() };
}

const CTX_MEMBERS = [
  ['secrets', 'the webtask\'s secrets'], ['params', 'the token\'s params'], ['meta', 'the webtask\'s meta'],
  ['query', 'the query string'], ['body', 'the parsed body'], ['headers', 'request headers'],
  ['storage', 'get(cb) / set(data, {force}, cb)'], ['data', 'secrets and params merged'],
  ['id', 'the request id'], ['create_token', 'issue a narrowed token'], ['token', 'the webtask\'s token'],
];

// ctxCompletions completes ctx.X and ctx.secrets.X / ctx.params.X /
// ctx.meta.X with the webtask's real names (names() answers them).
function ctxCompletions(names) {
  return (context) => {
    const nested = context.matchBefore(/ctx\.(secrets|params|meta|data)\.[\w$]*$/);
    if (nested) {
      const [, kind] = /ctx\.(\w+)\./.exec(nested.text);
      const n = names();
      const list = kind === 'data' ? [...n.secrets, ...n.params] : n[kind] || [];
      const from = nested.from + nested.text.lastIndexOf('.') + 1;
      return { from, options: list.map((label) => ({ label, type: 'property', detail: kind })), validFor: /^[\w$]*$/ };
    }
    const top = context.matchBefore(/ctx\.[\w$]*$/);
    if (!top) return null;
    return {
      from: top.from + 4,
      options: CTX_MEMBERS.map(([label, info]) => ({ label, type: 'property', info })),
      validFor: /^[\w$]*$/,
    };
  };
}

// daemonLinter underlines the syntax errors the daemon's transpiler (the
// one create/update use) reports for the code; check(code) answers
// [{line, column, message}] (1-based, the column in UTF-16 units). The
// lint extension debounces (delay) and drops answers for an older text.
function daemonLinter(check) {
  return linter(async (view) => {
    const doc = view.state.doc;
    let errors;
    try { errors = await check(doc.toString()); } catch { return []; }
    return (errors || []).map((e) => {
      const line = doc.line(Math.min(Math.max(e.line, 1), doc.lines));
      const from = Math.min(line.from + Math.max(e.column, 1) - 1, line.to);
      const to = Math.min(from + 1, doc.length);
      return { from, to, severity: 'error', source: 'webtaskd', message: e.message + ' (line ' + e.line + ', column ' + e.column + ')' };
    });
  }, { delay: 500 });
}

// styleNonce is// styleNonce is the page's CSP style nonce (its <meta>), for CodeMirror's
// generated <style> elements.
function styleNonce() {
  const m = document.querySelector('meta[name="webtaskd-style-nonce"]');
  return m ? m.content : '';
}

export class CodeEditor {
  // check(code) is the daemon's syntax check of code under the current
  // meta (POST /api/syntax/{container}).
  constructor(parent, { onChange, names, check }) {
    this.check = check;
    this.lang = new Compartment();
    this.theme = new Compartment();
    this.lint = new Compartment();
    this.names = names;
    this.silent = false;
    this.view = new EditorView({
      parent,
      state: EditorState.create({
        doc: '',
        extensions: [
          lineNumbers(), highlightActiveLineGutter(), foldGutter(), history(), drawSelection(),
          indentOnInput(), bracketMatching(), closeBrackets(), highlightActiveLine(), highlightSelectionMatches(),
          syntaxHighlighting(defaultHighlightStyle, { fallback: true }),
          autocompletion({ override: null }),
          javascriptLanguage.data.of({ autocomplete: ctxCompletions(names) }),
          keymap.of([...closeBracketsKeymap, ...defaultKeymap, ...searchKeymap, ...historyKeymap, ...completionKeymap, ...lintKeymap, indentWithTab]),
          this.lang.of(javascript()), this.theme.of([]), this.lint.of([]),
          EditorView.updateListener.of((u) => { if (u.docChanged && !this.silent) onChange(); }),
          EditorView.contentAttributes.of({ 'aria-label': 'webtask code' }),
          EditorView.cspNonce.of(styleNonce()),
        ],
      }),
    });
  }

  // lintExtensions are the lint extensions for meta: the daemon's check for
  // JavaScript and TypeScript, JSON.parse for JSON, none for HTML/Mustache
  // or when wt-editor-linter is disabled.
  lintExtensions(lang, meta) {
    if ((meta['wt-editor-linter'] || '').toLowerCase() === 'disabled') return [];
    if (lang.name === 'json') return [linter(jsonParseLinter(), { delay: 500 }), lintGutter()];
    if (lang.name === 'html') return [];
    return [daemonLinter((code) => this.check(code)), lintGutter()];
  }

  // load replaces the document (not an edit: no change event, no undo).
  load(code, meta) {
    this.silent = true;
    this.view.dispatch({ changes: { from: 0, to: this.view.state.doc.length, insert: code }, effects: this.configure(meta) });
    this.silent = false;
  }

  setMeta(meta) { this.view.dispatch({ effects: this.configure(meta) }); }

  configure(meta) {
    const lang = languageFor(meta);
    const lint = this.lintExtensions(lang, meta);
    this.language = lang.name;
    this.linting = lint.length > 0;
    return [this.lang.reconfigure(lang.ext), this.lint.reconfigure(lint)];
  }

  setCode(code) {
    this.view.dispatch({ changes: { from: 0, to: this.view.state.doc.length, insert: code } });
  }

  getCode() { return this.view.state.doc.toString(); }

  setDark(dark) { this.view.dispatch({ effects: this.theme.reconfigure(dark ? oneDark : []) }); }

  focus() { this.view.focus(); }
}
