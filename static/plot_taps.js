// A tap on a plot's point shows its tooltip, as a mouse over it does; a tap anywhere else hides
// it. Vega (Gradio's plots) shows a tooltip on pointermove and hides it on an out, and a
// finger's tap sends no move, only outs as it ends (a pointerout as it lifts, a mouseout after
// its click, at a moment of the browser's choosing): on a phone no tooltip opened, so neither a
// page's name nor its scores could be read off a point. Here a finger lifting sends Vega a move,
// the tap's own outs do not reach it, and the next tap sends it the out. (A finger that scrolls
// the page is cancelled, not lifted.)
() => {
  const TAP_OUTS_MS = 1000; // a tap's mouseout comes this soon after the finger lifts, or never
  let liftedAt = -Infinity; // when a finger last lifted
  let tapped = null; // the plot element whose tooltip a tap opened
  const inPlot = (node) => (node instanceof Element && node.closest("svg.marks") ? node : null);

  const tapsOwnOut = (event) => {
    if (!event.isTrusted || !inPlot(event.target)) return;
    if (event.pointerType === "touch" || performance.now() - liftedAt < TAP_OUTS_MS) event.stopPropagation();
  };
  document.addEventListener("pointerout", tapsOwnOut, true);
  document.addEventListener("mouseout", tapsOwnOut, true);

  document.addEventListener("pointerup", (event) => {
    if (event.pointerType !== "touch" || !event.isPrimary) return; // a mouse or a pen hovers: Vega sees that
    liftedAt = performance.now();
    const previous = tapped;
    tapped = inPlot(event.target);
    const { clientX, clientY, screenX, screenY } = event;
    const at = { bubbles: true, cancelable: true, composed: true, isPrimary: true, pointerType: "touch",
                 clientX, clientY, screenX, screenY };
    if (previous && previous !== tapped) {
      previous.dispatchEvent(new PointerEvent("pointerout", { ...at, relatedTarget: tapped }));
      previous.dispatchEvent(new MouseEvent("mouseout", { ...at, relatedTarget: tapped }));
    }
    if (tapped) tapped.dispatchEvent(new PointerEvent("pointermove", at));
  }, true);
}
