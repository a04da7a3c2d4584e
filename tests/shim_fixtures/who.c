/* libwho.so: built once per directory with -DWHO="<name>", so a program
 * linked against it tells which directory the loader took it from. */
const char *who(void) { return WHO; }
