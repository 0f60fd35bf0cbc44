"""The doit glue: the build being run, the file checker, the reporter, the commands and the nightly."""
