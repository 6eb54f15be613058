// Keyboard shortcuts for the Annotate tab: R relevant, N not relevant, S skip, U undo,
// ←/→ previous/next. Ignored while typing in a text field and when the tab is hidden.
() => {
  const buttons = {
    r: "judge-relevant",
    n: "judge-not-relevant",
    s: "judge-skip",
    u: "judge-undo",
    ArrowLeft: "nav-prev",
    ArrowRight: "nav-next",
  };
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || event.repeat) return;
    const target = event.target;
    if (target && (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName))) return;
    const id = buttons[event.key] || buttons[event.key.toLowerCase()];
    if (!id) return;
    const panel = document.getElementById("annotate-panel");
    if (!panel || panel.offsetParent === null) return; // only on the visible Annotate tab
    const element = document.getElementById(id);
    const button = element && (element.tagName === "BUTTON" ? element : element.querySelector("button"));
    if (!button || button.disabled) return;
    event.preventDefault();
    button.click();
  });
}
