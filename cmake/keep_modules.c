/* keep_modules.c: linked into every program of the sanitizer build. The
 * Vulkan loader unloads the driver and layer libraries when the last instance
 * is destroyed; a block a driver still holds in a global then shows up at exit
 * as a leak "(<unknown module>)", unattributable and unsuppressible (Mesa's
 * lavapipe 22.3 keeps 128 bytes this way). Keeping every library loaded lets
 * LeakSanitizer see the driver's globals and name the frames of any real leak.
 * Exported from the executable, this dlclose takes the place of libc's for
 * every library in the process. */
int dlclose(void *handle);

int dlclose(void *handle)
{
    (void)handle;
    return 0;
}
