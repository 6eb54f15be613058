// What a screen reader would not say of the app on its own (Gradio marks none of this up). One
// hidden polite live region, #arena-announcer, says:
// - Annotate: each page shown, judged or undone, in the words of the page image's label ("Page 2
//   of 10 · Relevant · 3/10 judged · “query”"), also on coming back to the tab; a key or click
//   not taken (static/shortcuts.js sends "arena:not-taken"), then the page on screen again.
// - Rank: that a ranking started, and its status line once it is done (what was ranked, in how
//   long, what failed), also when that reads as the last one did; what keeps one from starting
//   (the messages Gradio shows at the boxes), at every press. Not the status line itself as a
//   live region: Gradio's progress inside it changes ~10 times a second.
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
