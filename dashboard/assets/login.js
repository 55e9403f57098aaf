// The sign-in page: the token goes to POST /api/v1/session, which sets an
// HttpOnly cookie; then back to the page that sent us here.
'use strict';
(() => {
  const { C, T, postJSON } = window.cockpit;
  const form = document.getElementById('login-form');
  const errBox = document.getElementById('error');
  // Only a path on this server is a place to go back to: the server
  // checked it (dashboard.SafeNext) and put it in the page's config.
  const next = C.next || '/wall';
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    errBox.hidden = true;
    try {
      await postJSON('/session', 'POST', { token: form.token.value.trim() });
      location.replace(next);
    } catch (err) {
      errBox.hidden = false;
      errBox.textContent = T('login.failed') + ': ' + err.message;
      form.token.select();
    }
  });
})();
