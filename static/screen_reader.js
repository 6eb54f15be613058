// What a screen reader would not say of the app on its own (Gradio marks none of this up). One
// hidden polite live region, #arena-announcer, says:
// - Annotate: each page shown, judged or undone, in the words of the page image's label ("Page 2
//   of 10 · Relevant · 3/10 judged · “query”"), also on coming back to the tab; a key or click
//   not taken (static/shortcuts.js sends "arena:not-taken"), then the page on screen again.
// - Rank: the status line once a ranking is done (what was ranked, in how long, what failed), and
//   what keeps one from starting (the messages Gradio shows at the boxes). Not the status line
//   itself as a live region: Gradio's progress inside it changes ~10 times a second.
// And Gradio names each gallery thumbnail "Thumbnail 1 of 3", which hides its caption (rank,
// P(yes), file, the other model's rank): the caption becomes the button's name.
() => {
  const announcer = document.createElement("div");
  announcer.id = "arena-announcer";
  announcer.setAttribute("role", "status"); // polite
  document.body.appendChild(announcer);
  const say = (text) => { announcer.textContent = text; };

  let pageSaid = "";
  let quietUntil = 0; // after "not taken", the page is said again a moment later, not over it
  const sayPageLabel = () => {
    const panel = document.getElementById("annotate-panel");
    if (!panel || panel.offsetParent === null) {
      pageSaid = ""; // hidden: said again when the tab is opened again
      return;
    }
    const label = document.querySelector('#annotate-image [data-testid="block-label"]');
    const text = label ? label.textContent.trim() : "";
    // Once per change (Gradio redraws the label unchanged).
    if (!text || text === pageSaid || Date.now() < quietUntil) return;
    pageSaid = text;
    say(text);
  };
  document.addEventListener("arena:not-taken", (event) => {
    say(""); // said again for a second press
    setTimeout(() => say(`Not taken: ${event.detail}.`), 50);
    pageSaid = "";
    quietUntil = Date.now() + 1000;
    setTimeout(sayPageLabel, 1050);
  });

  // Rank's status line: said when it changes with no event running (the first one, the hint
  // shown at load, is not news).
  let statusSeen = null;
  const sayRankStatus = () => {
    const status = document.getElementById("rank-status");
    const text = status?.querySelector('[data-testid="markdown"]')?.textContent.trim();
    const tracker = status?.querySelector('[data-testid="status-tracker"]');
    if (!text || (tracker && !tracker.classList.contains("hide"))) return;
    if (statusSeen !== null && text !== statusSeen) say(text);
    statusSeen = text;
  };
  // Said, all of them, when one appears (they come one at a time: the last alone was heard),
  // not again as they go.
  let problemsShown = new Set();
  const sayInputProblems = () => {
    const shown = new Set([...document.querySelectorAll("div.validation-error")]
      .map((element) => element.textContent.trim()).filter(Boolean));
    if ([...shown].some((text) => !problemsShown.has(text))) say([...shown].join(" "));
    problemsShown = shown;
  };
  const nameThumbnails = () => {
    for (const button of document.querySelectorAll("button.thumbnail-item")) {
      const caption = button.querySelector(".caption-label")?.textContent.trim();
      if (caption && button.getAttribute("aria-label") !== caption) button.setAttribute("aria-label", caption);
    }
  };
  // One observer for all of it: each step is cheap (~13 ms over a 60-page ranking, measured).
  new MutationObserver(() => {
    sayPageLabel();
    sayRankStatus();
    sayInputProblems();
    nameThumbnails();
  }).observe(document.body, { subtree: true, childList: true, characterData: true, attributes: true,
    attributeFilter: ["class"] });
}
