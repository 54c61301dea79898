"""`faceveil review`: a local page to review what the leak gate withheld (add a missed face, release
with a reason, keep withheld), every action logged in the access log before it acts."""
