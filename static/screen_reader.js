// What a screen reader would not say of the app on its own (Gradio marks none of this up).
// - Annotate: each page shown, judged or undone is said in a hidden polite live region, in the
//   words of the page image's label ("Page 2 of 10 · Relevant · 3/10 judged · “query”"): the
//   view changed on screen and nothing was heard. A key not taken is said there too
//   (static/shortcuts.js writes it).
// - Rank: the status line under the query (what was ranked, in how long, what failed) is a
//   polite live region.
// - Galleries: Gradio names each thumbnail button "Thumbnail 1 of 3", which hides its caption
//   (rank, P(yes), file, the other model's rank); the caption becomes the button's name.
() => {
  const announcer = document.createElement("div");
  announcer.id = "arena-announcer";
  announcer.setAttribute("role", "status"); // polite
  announcer.className = "visually-hidden";
  document.body.appendChild(announcer);

  let said = "";
  const sayPageLabel = () => {
    const label = document.querySelector('#annotate-image [data-testid="block-label"]');
    const panel = document.getElementById("annotate-panel");
    const text = label ? label.textContent.trim() : "";
    // Only for the open Annotate tab, and once per change (Gradio redraws the label unchanged).
    if (!text || text === said || !panel || panel.offsetParent === null) return;
    said = text;
    announcer.textContent = text;
  };
  const nameThumbnails = () => {
    for (const button of document.querySelectorAll("button.thumbnail-item")) {
      const caption = button.querySelector(".caption-label");
      const name = caption && caption.textContent.trim();
      if (name && button.getAttribute("aria-label") !== name) button.setAttribute("aria-label", name);
    }
  };
  const markLiveRegions = () => {
    const status = document.getElementById("rank-status");
    if (status && !status.hasAttribute("aria-live")) status.setAttribute("aria-live", "polite");
  };
  // One observer for the three: each is cheap and checks only what it needs.
  new MutationObserver(() => {
    sayPageLabel();
    nameThumbnails();
    markLiveRegions();
  }).observe(document.body, { subtree: true, childList: true, characterData: true });
  markLiveRegions();
}
