// What a screen reader would not say of the app on its own (Gradio marks none of this up). One
// hidden polite live region, #arena-announcer, says:
// - Annotate: each page shown, judged or undone, in the words of the page image's label ("Page 2
//   of 10 · Relevant · 3/10 judged · “query”"), also on coming back to the tab, after what a
//   judging key or button recorded ("Page 1 of 10: relevant."; "Undone."); a key or click not
//   taken (static/shortcuts.js sends "arena:not-taken"), then the page on screen again.
// - Rank: that a ranking started, and its status line once it is done (what was ranked, in how
//   long, what failed), also when that reads as the last one did; what keeps one from starting
//   (the messages Gradio shows at the boxes), at every press. Not the status line itself as a
//   live region: Gradio's progress inside it changes ~10 times a second.
// - Export: what keeps the options from being exported (the ⚠️ line of the Preview box), and the
//   file once it is offered ("Export ready: arena-pointwise-….zip").
// And Gradio names each gallery thumbnail "Thumbnail 1 of 3", which hides its caption (rank,
// P(yes), file, the other model's rank): the caption becomes the button's name.
() => {
  const announcer = document.createElement("div");
  announcer.id = "arena-announcer";
  announcer.setAttribute("role", "status"); // polite
  document.body.appendChild(announcer);
  // Emptied first: the same words again (another press, the same page) are said again.
  const say = (text) => {
    announcer.textContent = "";
    setTimeout(() => { announcer.textContent = text; }, 50);
  };

  let pageSaid = "";
  let quietUntil = 0; // after "not taken", the page is said again a moment later, not over it
  // What a judging press recorded, said before the page that comes next: that page's label alone
  // sounded the same after R as after N, so a wrong key went unheard. The keys press the same
  // buttons (shortcuts.js). Heard in the bubble phase: a press not taken is stopped before it
  // (shortcuts.js), and must not drop the one before it that was. Forgotten when the server
  // answers with a message instead (no name yet, nothing to undo) or another control is used;
  // said alone once the press's answer is in if no page change said it (the same label again).
  const RECORDED = { "judge-relevant": "relevant", "judge-not-relevant": "not relevant", "judge-skip": "skipped" };
  const JUDGING = "#judge-relevant, #judge-not-relevant, #judge-skip, #judge-undo";
  let recorded = null;
  document.addEventListener("click", (event) => {
    const button = event.target.closest?.("button");
    if (!button || !button.closest("#annotate-panel")) return;
    if (!button.matches(JUDGING)) {
      recorded = null; // another control: its own page is said
      return;
    }
    const label = document.querySelector('#annotate-image [data-testid="block-label"]')?.textContent.trim() || "";
    const text = button.id === "judge-undo" ? "Undone." : `${label.split(" · ")[0]}: ${RECORDED[button.id]}.`;
    recorded = { text, at: Date.now() };
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && event.target.closest?.("#annotate-panel input, #annotate-panel textarea")) recorded = null;
  }, true);
  let toasts = 0;
  let viewRunning = false;
  const forgetOnMessage = () => {
    const shown = document.querySelectorAll(".toast-body").length;
    if (shown > toasts) recorded = null;
    toasts = shown;
    const tracker = document.querySelector('#annotate-progress [data-testid="status-tracker"]');
    const running = !!tracker && !tracker.classList.contains("hide");
    if (viewRunning && !running && recorded) {
      const pending = recorded;
      const sayAlone = () => {
        if (recorded !== pending) return; // said with the page, or forgotten
        if (Date.now() < quietUntil) return setTimeout(sayAlone, quietUntil - Date.now() + 100); // "not taken" first
        recorded = null;
        // A message on screen (Gradio shows the same one once, so no new toast is counted above):
        // the answer may have been it, so nothing is claimed.
        if (!document.querySelector(".toast-body")) say(pending.text);
      };
      setTimeout(sayAlone, 400);
    }
    viewRunning = running;
  };
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
    // Not an older press's ("Nothing to undo" changes no page; the toast says that).
    const before = recorded && Date.now() - recorded.at < 5000 ? `${recorded.text} ` : "";
    recorded = null;
    say(before + text);
  };
  document.addEventListener("arena:not-taken", (event) => {
    say(`Not taken: ${event.detail}.`);
    pageSaid = "";
    quietUntil = Date.now() + 1000;
    setTimeout(sayPageLabel, 1050);
  });

  // Rank's status line: said when a ranking ends (Gradio's progress on it is hidden again, and
  // stays hidden: a ranking is a few steps, each showing it). A press refused at the boxes shows
  // that progress for a moment too: it says its problems instead.
  let ranking = false;
  let startSaid = false;
  let ending = null;
  const sayRankStatus = () => {
    const status = document.getElementById("rank-status");
    const tracker = status?.querySelector('[data-testid="status-tracker"]');
    if (!tracker) return;
    const running = !tracker.classList.contains("hide");
    if (running && !ranking) {
      clearTimeout(ending);
      setTimeout(() => {
        if (ranking && !startSaid && !problems().length) {
          startSaid = true;
          say("Ranking…");
        }
      }, 300);
    }
    if (!running && ranking) {
      ending = setTimeout(() => {
        const text = status.querySelector('[data-testid="markdown"]')?.textContent.trim();
        if (text && !problems().length) say(text);
        startSaid = false;
      }, 400);
    }
    ranking = running;
  };
  // What keeps a ranking from starting: said, all of it, when a message appears (they come one at
  // a time: the last alone was heard), and at each press of Rank that it refuses again (the
  // messages stay on the page, unchanged).
  let problemsShown = new Set();
  let problemsSaidAt = 0;
  const problems = () => [...new Set([...document.querySelectorAll("div.validation-error")]
    .map((element) => element.textContent.trim()).filter(Boolean))];
  const sayProblems = (shown) => {
    say(shown.join(" "));
    problemsSaidAt = Date.now();
  };
  const sayInputProblems = () => {
    const shown = problems();
    if (shown.some((text) => !problemsShown.has(text))) sayProblems(shown);
    problemsShown = new Set(shown);
  };
  const rankPressed = () => {
    const pressedAt = Date.now();
    setTimeout(() => {
      const shown = problems();
      if (problemsSaidAt < pressedAt && shown.length) sayProblems(shown);
    }, 600);
  };
  document.addEventListener("click", (event) => { if (event.target.closest?.("#rank-button")) rankPressed(); }, true);
  document.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && event.target.closest?.("#query")) rankPressed();
  }, true);
  // Export: each once, as it appears (Gradio changes these boxes without a word).
  let exportProblemSaid = "";
  let exportFileSaid = "";
  const sayExport = () => {
    const summary = document.querySelector("#export-summary")?.textContent.trim() || "";
    const problem = summary.startsWith("⚠️") ? summary.replace(/^⚠️\s*/, "") : "";
    if (problem && problem !== exportProblemSaid) say(problem);
    exportProblemSaid = problem;
    const file = document.querySelector("#export-download td.filename")?.getAttribute("aria-label") || "";
    if (file && file !== exportFileSaid) say(`Export ready: ${file}`);
    exportFileSaid = file;
  };
  // The thumbnail of the page shown large (and that page in the other gallery) is marked by its
  // ring alone: aria-current says it too.
  const nameThumbnails = () => {
    for (const button of document.querySelectorAll("button.thumbnail-item")) {
      const caption = button.querySelector(".caption-label")?.textContent.trim();
      if (caption && button.getAttribute("aria-label") !== caption) button.setAttribute("aria-label", caption);
      const current = button.classList.contains("selected");
      if (current !== button.hasAttribute("aria-current")) {
        if (current) button.setAttribute("aria-current", "true");
        else button.removeAttribute("aria-current");
      }
    }
  };
  // One observer for all of it: each step is cheap (~13 ms over a 60-page ranking, measured).
  new MutationObserver(() => {
    forgetOnMessage();
    sayPageLabel();
    sayRankStatus();
    sayInputProblems();
    sayExport();
    nameThumbnails();
  }).observe(document.body, { subtree: true, childList: true, characterData: true, attributes: true,
    attributeFilter: ["class"] });
}
