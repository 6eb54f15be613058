// Gradio 6 leaves a drop-down list open once the focus has left its box: tabbing through
// Annotate's Order and Query lists left both open, over the page's label and the refresh button.
// A box that loses the focus, except to its own list (a click on a choice), closes its list as
// Escape does. And a long list, which scrolls, is no stop of its own for Tab (the browser made it
// one: Tab from the Query box went into its list, then to the page's body, the list left open).
() => {
  const listOf = (box) => document.getElementById(box.getAttribute("aria-controls"));
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Tab") return;
    const list = event.target.closest?.('[role="combobox"]') && listOf(event.target.closest('[role="combobox"]'));
    if (list) list.tabIndex = -1;
  }, true);
  document.addEventListener("focusout", (event) => {
    const box = event.target.closest?.('[role="combobox"]');
    if (!box) return;
    const list = listOf(box);
    if (list && event.relatedTarget && list.contains(event.relatedTarget)) return;
    box.dispatchEvent(new KeyboardEvent("keydown", { key: "Escape", bubbles: true }));
  }, true);
}
