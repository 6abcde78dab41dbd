// Links into the Airflow UI (class "airflow-link"). Inside the UI's iframe, which Airflow sandboxes
// without allow-top-navigation, a plain target=_top link is blocked; the UI is a same-origin
// single-page app, so move its router instead: push the URL onto the top window's history and
// tell the router with a popstate event. Opened on its own, the link works as a normal link.
document.addEventListener("click", function (event) {
  var link = event.target.closest && event.target.closest("a.airflow-link");
  if (!link || window.top === window || event.ctrlKey || event.metaKey || event.shiftKey) return;
  try {
    var top = window.top;
    top.history.pushState(null, "", link.getAttribute("href"));
    top.dispatchEvent(new PopStateEvent("popstate", { state: null }));
    event.preventDefault();
  } catch (e) {
    // not same-origin after all: let the browser try the link itself
  }
});
