// Where the keyboard's focus goes when the app brings something into view far from it (the results
// of a ranking: reranker/ui/rank_tab.py). Left where it was, it was above the screen, and the next
// Tab or key went back up there. It follows only when it is still where the ranking was asked for
// (the Rank button, Enter in the query box) and nothing was typed since: someone typing the next
// question while a ranking ran lost the rest of it to the results' header.
() => {
  let asked = null;
  const note = () => { asked = { element: document.activeElement, typed: false }; };
  document.addEventListener("click", (event) => { if (event.target.closest?.("#rank-button")) note(); }, true);
  document.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && event.target.closest?.("#query")) note();
    else if (asked) asked.typed = true;
  }, true);
  // Rank and Stop take each other's place while a ranking runs (arena.css): the focus on the one
  // hidden fell to the page's body (the next Tab started over at the top, and the results of a
  // ranking asked for by the Rank button no longer took the focus). It goes to the other one, or,
  // where neither shows for a moment (Gradio redraws a button, a step flickers between them), to
  // the first of them shown again. Looked up by id: Gradio may put a new element in its place.
  const PAIR = { "rank-button": "stop-ranking", "stop-ranking": "rank-button" };
  let focusedId = null; // the one of the pair the keyboard is on
  let dropped = false; // its focus fell to the body with neither shown
  document.addEventListener("focusin", (event) => {
    focusedId = event.target.closest?.("#rank-button, #stop-ranking")?.id || null;
    dropped = false;
  });
  const shown = (element) => !!element && element.offsetParent !== null;
  const followSwap = () => {
    if (!focusedId) return;
    const mine = document.getElementById(focusedId);
    const active = document.activeElement;
    if (active !== document.body && active !== mine) return; // moved on
    const other = document.getElementById(PAIR[focusedId]);
    const target = shown(mine) ? (dropped && active === document.body ? mine : null) : shown(other) ? other : null;
    if (target) target.focus({ preventScroll: true }); // its focusin says where the keyboard is now
    else if (!shown(mine)) dropped = true;
  };
  new MutationObserver(followSwap).observe(document.body, { subtree: true, childList: true, attributes: true,
    attributeFilter: ["class"] });
  window.rerankArenaFocusResults = (target) => {
    const from = asked;
    asked = null;
    if (!from || from.typed || document.activeElement !== from.element) return;
    target.setAttribute("tabindex", "-1");
    target.focus({ preventScroll: true });
  };
}
