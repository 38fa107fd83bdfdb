/* std_fds.c: closed standard descriptors given /dev/null (see std_fds.h). */
#include "std_fds.h"

#include <errno.h>
#include <fcntl.h>

void std_fds_keep(void)
{
    for (int fd = 0; fd <= 2; fd++)
        if (fcntl(fd, F_GETFD) < 0 && errno == EBADF)
            open("/dev/null", fd == 2 ? O_WRONLY : O_RDONLY); /* the lowest free number: fd */
}
