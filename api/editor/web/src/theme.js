// Light, dark and auto (the system's preference) themes.
const media = window.matchMedia('(prefers-color-scheme: dark)');

export class Theme {
  constructor(onDark) {
    this.onDark = onDark;
    this.mode = 'auto';
    media.addEventListener('change', () => this.apply());
  }
  set(mode) {
    this.mode = ['light', 'dark', 'auto'].includes(mode) ? mode : 'auto';
    this.apply();
  }
  dark() { return this.mode === 'dark' || (this.mode === 'auto' && media.matches); }
  apply() {
    const dark = this.dark();
    document.documentElement.dataset.theme = dark ? 'dark' : 'light';
    this.onDark(dark);
  }
}
