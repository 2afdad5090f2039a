# `cmake --build build --target package` makes crmsync_<version>_<arch>.deb: the binary, the man
# page crmsync(1) generated from the --help texts at build time, the examples, and the Debian
# dependencies computed from the libraries the binary links (dpkg-shlibdeps).
set(CRMSYNC_MANPAGE ${PROJECT_BINARY_DIR}/crmsync.1)
add_custom_command(
  OUTPUT ${CRMSYNC_MANPAGE}.gz
  COMMAND ${PROJECT_SOURCE_DIR}/cmake/make_manpage.sh $<TARGET_FILE:crmsync> ${CRMSYNC_MANPAGE}
  COMMAND gzip -9nf ${CRMSYNC_MANPAGE}
  DEPENDS crmsync ${PROJECT_SOURCE_DIR}/cmake/make_manpage.sh
  COMMENT "Writing crmsync(1) from the --help texts")
add_custom_target(crmsync_manpage ALL DEPENDS ${CRMSYNC_MANPAGE}.gz)

include(GNUInstallDirs)
install(TARGETS crmsync RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(FILES ${CRMSYNC_MANPAGE}.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/examples/
        DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples USE_SOURCE_PERMISSIONS)
install(FILES ${PROJECT_SOURCE_DIR}/README.md DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(FILES ${PROJECT_SOURCE_DIR}/LICENSE DESTINATION ${CMAKE_INSTALL_DOCDIR}
        RENAME copyright)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME crmsync)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "crmsync maintainers <crmsync@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "sync contact-center and CRM data into SQL databases and web services")
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION
    "One-shot sync runs, from cron or systemd timers: Dialfire campaigns, Bitrix24 deal history,\na call-center service and OAuth accounts into PostgreSQL, MariaDB/MySQL, SQL Server or SQLite,\nor to a webhook with retries. Replaces dbsync2 and accepts its command lines.")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT) # crmsync_<version>_<arch>.deb
set(CPACK_DEBIAN_PACKAGE_SECTION database)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# SQL Server goes through unixODBC's FreeTDS driver, loaded at run time, not linked.
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "tdsodbc, ca-certificates")
set(CPACK_PACKAGE_INSTALL_DIRECTORY crmsync)
set(CPACK_STRIP_FILES ON)
include(CPack)
