// Keyboard shortcuts for the Annotate tab: R relevant, N not relevant, S skip, U undo, ←/→
// previous/next, Q the next query to judge. Ignored while typing in a text field, when the tab is
// hidden, while the page view is being redrawn (keys and clicks on those buttons alike), and (R,
// N, S and their buttons) while the page's image is loading; a focused radio button, checkbox,
// button or read-only list box takes no typing, so they work there (a dropdown lets go of the
// focus once chosen, or closed with Escape), and after Enter in "Jump to page" or the name box,
// that box gives up the focus.
// Single keys can be turned off (the tab's "Keyboard shortcuts" box, remembered by the browser):
// a screen reader's browse mode and speech input use letters too (WCAG 2.1.4).
() => {
  const SHORTCUTS_KEY = "rerank-arena-shortcuts";
  // What the browser remembers (the box writes it: annotate_tab.py) decides, in every tab.
  const shortcutsOn = () => {
    try {
      return window.localStorage.getItem(SHORTCUTS_KEY) !== "off";
    } catch {
      return window.rerankArenaShortcutsOn !== false; // storage refused (a sandboxed frame): this tab's box
    }
  };
  // The box shows it: set at page load, and here when another tab changes it (a click: Gradio's
  // value too), and when Annotate opens (Gradio builds a tab's boxes when it is first opened,
  // with the value of the page load: a tab that had not opened Annotate showed keys on, off).
  const showRemembered = () => {
    const box = document.querySelector("#shortcuts-on input");
    if (box && box.checked !== shortcutsOn()) box.click();
  };
  window.addEventListener("storage", (event) => { if (event.key === SHORTCUTS_KEY) showRemembered(); });
  new MutationObserver(() => {
    if (document.querySelector('[role="tab"][data-tab-id="annotate"][aria-selected="true"]')) {
      for (const wait of [50, 300, 1000]) setTimeout(showRemembered, wait); // once it is built
    }
  }).observe(document.body, { subtree: true, attributes: true, attributeFilter: ["aria-selected"] });
  const CLICKED_NOT_TYPED = ["radio", "checkbox", "button", "submit", "reset"];
  // (A read-only box takes no typing: the Order list, where Tab from the name box lands, dropped
  // every key there without a word.)
  const typingIn = (target) =>
    target &&
    (target.isContentEditable ||
      ["TEXTAREA", "SELECT"].includes(target.tagName) ||
      (target.tagName === "INPUT" && !CLICKED_NOT_TYPED.includes(target.type) && !target.readOnly));
  const buttons = {
    r: "judge-relevant",
    n: "judge-not-relevant",
    s: "judge-skip",
    u: "judge-undo",
    ArrowLeft: "nav-prev",
    ArrowRight: "nav-next",
    q: "next-query",
  };
  // A judge or move button clicked with the mouse lets go of the focus: left on it, a Space (to
  // scroll the tall page) or an Enter would press it again and judge a page nobody looked at.
  // (Pressed from the keyboard, event.detail is 0 and the focus stays, for Tab users.)
  const BUTTON_IDS = Object.values(buttons);
  // Whether an event that redraws the page view (a judgment, a move, a jump, another query or
  // order, a name) is on its way: Gradio shows its status on the progress line until the answer
  // is in ("Error" once it failed, which blocks nothing). A judgment sent meanwhile ran beside
  // it, and the view, worked out before the judgment, could arrive last showing the old count;
  // and the page it will bring is not on screen yet.
  const viewOnItsWay = () => {
    const tracker = document.querySelector('#annotate-progress [data-testid="status-tracker"]');
    return !!tracker && !tracker.classList.contains("hide") && !tracker.querySelector(".error");
  };
  // A key or click that judges or moves nothing says so: the page image flashes its outline (on
  // a slow link the next page's text shows a second before its image, and a silent drop looked
  // like a lost key), and a screen reader says why (static/screen_reader.js).
  const ON_ITS_WAY = "the last key or click is still being carried out";
  const IMAGE_ARRIVING = "the page's image is still arriving";
  const ignored = (why = ON_ITS_WAY) => {
    const panel = document.getElementById("annotate-panel");
    if (!panel) return;
    document.dispatchEvent(new CustomEvent("arena:not-taken", { detail: why }));
    panel.classList.remove("key-ignored");
    void panel.offsetWidth; // restart the flash for a second ignored key
    panel.classList.add("key-ignored");
    setTimeout(() => panel.classList.remove("key-ignored"), 600);
  };
  // A label is for the page in view: while the next page's image is still arriving (the text
  // beside it already names that page; ~0.1 s here, longer on a slow link), the old image is
  // on screen, so judging waits for it (dropped, as presses during a request are). Only when
  // it is on screen: Gradio loads it lazily, so one scrolled far away may never load.
  const imageArriving = () => {
    const image = document.querySelector("#annotate-image img");
    const box = image && image.getBoundingClientRect();
    return !!image && !image.complete && box.bottom > 0 && box.top < window.innerHeight;
  };
  // A tab come back to shows the page and the counts as they are now (another tab or window of
  // the same annotator may have judged meanwhile: this one still showed "Unjudged · 0/5"):
  // "Refresh list" redraws both and keeps the page on screen. At most every few seconds, and
  // not while a view is on its way.
  let refreshedAt = 0;
  const refreshOnReturn = () => {
    const panel = document.getElementById("annotate-panel");
    if (document.visibilityState !== "visible" || !panel || panel.offsetParent === null || viewOnItsWay()) return;
    const refresh = document.querySelector("#refresh-list");
    if (!refresh || Date.now() - refreshedAt < 3000) return;
    refreshedAt = Date.now();
    (refresh.tagName === "BUTTON" ? refresh : refresh.querySelector("button")).click();
  };
  // (Not on the window's focus: a browser gives it at odd times, a first click in the page among
  // them, and each redraw makes the next key wait.)
  document.addEventListener("visibilitychange", refreshOnReturn);
  const JUDGE_IDS = [buttons.r, buttons.n, buttons.s];
  document.addEventListener("click", (event) => {
    const button = event.target.closest && event.target.closest("button");
    const id = button && BUTTON_IDS.find((id) => button.id === id || button.closest("#" + id));
    if (!id) return;
    // Clicks and Enter on the buttons as the keys: a click judged the page whose image had not come.
    const why = viewOnItsWay() ? ON_ITS_WAY : JUDGE_IDS.includes(id) && imageArriving() ? IMAGE_ARRIVING : null;
    if (why) {
      event.stopPropagation();
      event.preventDefault();
      ignored(why);
      return;
    }
    if (event.detail !== 0) button.blur();
  }, true);
  // The letter of a key whatever the layout: a Latin layout's letter as typed (R on AZERTY is R;
  // its punctuation and accented letters are no shortcut); on another script's layout (Russian:
  // "к") the letter in that key's place on a US keyboard, where it had done nothing at all.
  const otherScriptLetter = (key) => /^\p{L}$/u.test(key) && !/^\p{Script=Latin}$/u.test(key);
  const keyName = (event) =>
    otherScriptLetter(event.key) && /^Key[A-Z]$/.test(event.code) ? event.code.slice(3).toLowerCase() : event.key;
  // Held down, ← and → page on (each repeat still waits for the page before it); a held R, N,
  // S, U or Q acts once.
  const REPEATING = ["ArrowLeft", "ArrowRight"];
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.repeat && !REPEATING.includes(event.key)) return;
    if (event.key === "Enter" && event.target.closest && event.target.closest("#jump, #annotator")) {
      // Enter has sent the jump, or the name: the box lets go of the focus, so the keys judge
      // again (an R after the name went into it: "Dana" became "Danar").
      setTimeout(() => event.target.blur(), 0);
      return;
    }
    if (event.key === "Escape" && event.target.closest && event.target.closest('#annotate-panel [role="combobox"]')) {
      // The list is closed without a choice: its box kept the focus, and the next R was typed
      // into it as a filter (an N or an arrow key did nothing, or reopened the list).
      setTimeout(() => event.target.blur(), 0);
      return;
    }
    if (typingIn(event.target) || !shortcutsOn()) return;
    const key = keyName(event);
    const id = buttons[key] || buttons[key.toLowerCase()];
    if (!id) return;
    const panel = document.getElementById("annotate-panel");
    if (!panel || panel.offsetParent === null) return; // only on the visible Annotate tab
    const element = document.getElementById(id);
    const button = element && (element.tagName === "BUTTON" ? element : element.querySelector("button"));
    if (!button || button.disabled) return;
    event.preventDefault();
    if (viewOnItsWay()) return event.repeat ? undefined : ignored(); // dropped, as presses during a request are (a held arrow's repeats, quietly)
    if (JUDGE_IDS.includes(id) && imageArriving()) return ignored(IMAGE_ARRIVING);
    // Out of a read-only list box (the Order list, reached by Tab): its list closes, and the
    // next key is not taken as a choice in it.
    if (event.target.closest && event.target.closest('[role="combobox"]')) event.target.blur();
    button.click();
  });
}
