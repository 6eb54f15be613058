// The open tab in the address bar: `?tab=annotate` while Annotate is open, nothing for the other
// tabs, so that a reload or a bookmark opens Annotate.
// Watched on the tab buttons' aria-selected: a click, the keyboard and the app's own switches
// (Open in Annotate, the page load's) all count, at once (an event listener ran late: a reload
// just after a click still found the tab before).
() => {
  const REMEMBERED = ["annotate"];
  const noteOpenTab = () => {
    const open = document.querySelector('[role="tab"][aria-selected="true"][data-tab-id]');
    if (!open) return;
    const url = new URL(window.location.href);
    if (REMEMBERED.includes(open.dataset.tabId)) url.searchParams.set("tab", open.dataset.tabId);
    else url.searchParams.delete("tab");
    if (url.href !== window.location.href) window.history.replaceState(window.history.state, "", url);
  };
  // A reload or a bookmark of `?tab=annotate` opens Annotate, as a click on it does (its
  // events run as on a click).
  const asked = new URL(window.location.href).searchParams.get("tab");
  if (REMEMBERED.includes(asked)) document.querySelector(`[role="tab"][data-tab-id="${asked}"]`)?.click();
  else if (asked !== null) noteOpenTab(); // another value opens Rank: the address says so
  new MutationObserver(noteOpenTab).observe(document.body, {
    subtree: true, attributes: true, attributeFilter: ["aria-selected"],
  });
}
