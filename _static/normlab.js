// On a phone the chapter list and "On this page" open as dialogs over the page. A reader who
// picks a section there wants to read it: close the dialog and let the link scroll the page.
document.addEventListener("click", (event) => {
  const link = event.target.closest("dialog a[href]");
  const dialog = link?.closest("dialog");
  if (dialog?.open) dialog.close();
});
