// Gradio 6 leaves a drop-down list open once Tab has moved the focus past its box: tabbing through
// Annotate's Order and Query lists left both open, over the page's label and the refresh button.
// A box that loses the focus, except to its own list, closes its list as Escape does.
() => {
  document.addEventListener("focusout", (event) => {
    const box = event.target.closest?.('[role="combobox"]');
    if (!box) return;
    const list = document.getElementById(box.getAttribute("aria-controls"));
    if (list && event.relatedTarget && list.contains(event.relatedTarget)) return;
    box.dispatchEvent(new KeyboardEvent("keydown", { key: "Escape", bubbles: true }));
  }, true);
}
