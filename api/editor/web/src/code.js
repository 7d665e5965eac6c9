// The code editor: CodeMirror 6 with the language chosen from the
// webtask's meta, ctx. completion and a syntax linter.
import { EditorView, keymap, lineNumbers, highlightActiveLine, highlightActiveLineGutter, drawSelection } from '@codemirror/view';
import { EditorState, Compartment } from '@codemirror/state';
import { defaultKeymap, history, historyKeymap, indentWithTab } from '@codemirror/commands';
import { syntaxHighlighting, defaultHighlightStyle, bracketMatching, indentOnInput, syntaxTree, foldGutter } from '@codemirror/language';
import { searchKeymap, highlightSelectionMatches } from '@codemirror/search';
import { autocompletion, completionKeymap, closeBrackets, closeBracketsKeymap } from '@codemirror/autocomplete';
import { linter, lintGutter } from '@codemirror/lint';
import { javascript, javascriptLanguage } from '@codemirror/lang-javascript';
import { json } from '@codemirror/lang-json';
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

// syntaxLinter underlines the parser's error nodes (line and column come
// from the editor; no code is evaluated).
const syntaxLinter = linter((view) => {
  const out = [];
  syntaxTree(view.state).cursor().iterate((node) => {
    if (node.type.isError && out.length < 50) {
      const from = node.from, to = Math.max(node.to, Math.min(node.from + 1, view.state.doc.length));
      out.push({ from, to, severity: 'error', message: 'syntax error' });
    }
  });
  return out;
}, { delay: 400 });

// styleNonce is the page's CSP style nonce (its <meta>), for CodeMirror's
// generated <style> elements.
function styleNonce() {
  const m = document.querySelector('meta[name="webtaskd-style-nonce"]');
  return m ? m.content : '';
}

export class CodeEditor {
  constructor(parent, { onChange, names }) {
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
          keymap.of([...closeBracketsKeymap, ...defaultKeymap, ...searchKeymap, ...historyKeymap, ...completionKeymap, indentWithTab]),
          this.lang.of(javascript()), this.theme.of([]), this.lint.of([]),
          EditorView.updateListener.of((u) => { if (u.docChanged && !this.silent) onChange(); }),
          EditorView.contentAttributes.of({ 'aria-label': 'webtask code' }),
          EditorView.cspNonce.of(styleNonce()),
        ],
      }),
    });
  }

  // load replaces the document (not an edit: no change event, no undo).
  load(code, meta) {
    const lang = languageFor(meta);
    const lintOn = (meta['wt-editor-linter'] || '').toLowerCase() !== 'disabled';
    this.silent = true;
    this.view.dispatch({
      changes: { from: 0, to: this.view.state.doc.length, insert: code },
      effects: [this.lang.reconfigure(lang.ext), this.lint.reconfigure(lintOn ? [syntaxLinter, lintGutter()] : [])],
    });
    this.silent = false;
    this.language = lang.name;
    this.linting = lintOn;
  }

  setMeta(meta) {
    const lang = languageFor(meta);
    const lintOn = (meta['wt-editor-linter'] || '').toLowerCase() !== 'disabled';
    this.view.dispatch({ effects: [this.lang.reconfigure(lang.ext), this.lint.reconfigure(lintOn ? [syntaxLinter, lintGutter()] : [])] });
    this.language = lang.name;
    this.linting = lintOn;
  }

  setCode(code) {
    this.view.dispatch({ changes: { from: 0, to: this.view.state.doc.length, insert: code } });
  }

  getCode() { return this.view.state.doc.toString(); }

  setDark(dark) { this.view.dispatch({ effects: this.theme.reconfigure(dark ? oneDark : []) }); }

  focus() { this.view.focus(); }
}
