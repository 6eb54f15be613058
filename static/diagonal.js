// The line where both models give a page the same P(yes), y = x, on the two plots of A's P(yes)
// against B's (Rank's and Evaluate's): a point above it is a page B scores higher. Gradio's
// ScatterPlot draws no reference line. Both axes run exactly 0 to 1 (x_lim, y_lim), so the line
// is the plot area's diagonal, bottom left to top right, whatever the plot's shape. It lies over
// the plot, not in it: Vega redraws its own SVG and reuses its nodes by position, so a node put
// inside it would be dropped or would displace Vega's own. Placed again after any redraw or resize.
() => {
  const PLOTS = ["#scatter-plot", "#scores-by-label"];
  const SVG = "http://www.w3.org/2000/svg";

  const place = (block) => {
    let overlay = block.querySelector(":scope > svg.arena-diagonal");
    const area = block.querySelector("svg.marks path.background"); // the plot area (Vega's frame)
    if (!area) { // no plot drawn (no points yet)
      if (overlay) overlay.style.display = "none";
      return;
    }
    const box = area.getBoundingClientRect();
    if (box.width < 2 || box.height < 2) return; // its tab is hidden, and the overlay with it
    if (!overlay) {
      overlay = document.createElementNS(SVG, "svg");
      overlay.setAttribute("class", "arena-diagonal");
      overlay.setAttribute("aria-hidden", "true"); // the plot's label says what it is
      overlay.setAttribute("preserveAspectRatio", "none");
      const line = document.createElementNS(SVG, "line");
      line.setAttribute("vector-effect", "non-scaling-stroke"); // the dashes keep their size when stretched
      for (const [name, value] of [["x1", 0], ["y1", 1], ["x2", 1], ["y2", 0]]) line.setAttribute(name, value);
      overlay.appendChild(line);
      block.appendChild(overlay);
    }
    const outer = block.getBoundingClientRect();
    overlay.setAttribute("viewBox", "0 0 1 1");
    Object.assign(overlay.style, {
      display: "block",
      left: `${box.left - outer.left + block.scrollLeft - block.clientLeft}px`,
      top: `${box.top - outer.top + block.scrollTop - block.clientTop}px`,
      width: `${box.width}px`,
      height: `${box.height}px`,
    });
  };

  let queued = false;
  const sized = new ResizeObserver(() => placeAll()); // resized, or shown again with its tab
  const watched = new WeakSet();
  const placeAll = () => {
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => {
      queued = false;
      for (const selector of PLOTS) {
        const block = document.querySelector(selector);
        if (!block) continue; // its tab not opened yet
        if (!watched.has(block)) {
          watched.add(block);
          sized.observe(block);
        }
        place(block);
      }
    });
  };
  // A redraw adds or replaces nodes (new points, a tab opened the first time); changing only
  // the overlay's attributes, as `place` does, is no such change, so this does not feed itself.
  new MutationObserver(placeAll).observe(document.body, { subtree: true, childList: true });
  placeAll();
}
