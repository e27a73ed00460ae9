/* tools.h - the operator subcommands built into the pgsluice binary: `pgsluice tune` and `pgsluice userlist`.
 * main.c hands argv over before its own option parsing; each returns the process exit code. */
#ifndef SL_TOOLS_H
#define SL_TOOLS_H

int sl_tool_tune_main(int argc, char **argv);
int sl_tool_userlist_main(int argc, char **argv);

#endif
