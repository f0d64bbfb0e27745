// /proc/self/mountinfo parsing (base/mountinfo.h).
#include <catch2/catch.hpp>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "base/mountinfo.h"

using namespace hf;

namespace {
// Lines in the kernel's format (proc(5)); the FUSE ones as the kernel prints an hfmount mount
// whose fsname and mount point contain a space (octal-escaped).
const char* kMountinfo =
    "22 27 0:21 / /proc rw,relatime - proc proc rw\n"
    "27 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
    "60 27 0:50 / /mnt/hf rw,nosuid,nodev,relatime shared:30 - autofs systemd-1 rw,fd=44\n"
    "61 60 0:51 / /mnt/hf ro,nosuid,nodev,relatime shared:31 - fuse.hfmount hf://acme/tiny "
    "ro,user_id=0,group_id=0,default_permissions,allow_other\n"
    "62 27 0:52 / /home/u/my\\040models rw,nosuid,nodev - fuse.hfmount hf://datasets/a/b\\134c "
    "rw,user_id=1000,group_id=1000\n"
    "63 62 0:53 / /home/u/my\\040models/inner rw - tmpfs tmpfs rw\n"
    "garbage line\n"
    "64 27 0:54 / /srv/x rw master:7 propagate_from:3 - fuse.sshfs u@h:/ rw,user_id=0,group_id=0\n";
}  // namespace

TEST_CASE("mountinfo: fields, escapes, FUSE owner") {
  auto all = parse_mountinfo(kMountinfo);
  REQUIRE(all.size() == 7);  // the garbage line is skipped
  CHECK(all[1].mountpoint == "/");
  CHECK(all[1].dev_major == 8);
  CHECK(all[1].dev_minor == 1);
  const auto& hf1 = all[3];
  CHECK(hf1.id == 61);
  CHECK(hf1.parent == 60);
  CHECK(hf1.fstype == "fuse.hfmount");
  CHECK(hf1.source == "hf://acme/tiny");
  CHECK(hf1.user_id == 0u);
  CHECK(hf1.dev_major == 0);
  CHECK(hf1.dev_minor == 51);
  CHECK(hf1.is_hfmount());
  const auto& hf2 = all[4];
  CHECK(hf2.mountpoint == "/home/u/my models");
  CHECK(hf2.source == "hf://datasets/a/b\\c");
  CHECK(hf2.user_id == 1000u);
  CHECK(all[6].fstype == "fuse.sshfs");  // optional fields before '-' are skipped
  CHECK_FALSE(all[0].user_id.has_value());

  auto hf = hfmount_entries(all);
  REQUIRE(hf.size() == 2);
  CHECK(hf[0].mountpoint == "/mnt/hf");
  CHECK(hf[1].mountpoint == "/home/u/my models");
}

TEST_CASE("mountinfo: escapes") {
  CHECK(unescape_mountinfo("a\\040b\\011c\\012d\\134e") == "a b\tc\nd\\e");
  CHECK(unescape_mountinfo("trailing\\04") == "trailing\\04");
  CHECK(unescape_mountinfo("\\999") == "\\999");
  CHECK(unescape_mountinfo("") == "");
}

TEST_CASE("mountinfo: the mount at / containing a path (overmounts, autofs underneath)") {
  auto all = parse_mountinfo(kMountinfo);
  const MountEntry* at = mount_at(all, "/mnt/hf");
  REQUIRE(at);
  CHECK(at->is_hfmount());  // the FUSE mount on top of the automount point
  CHECK(mount_at(all, "/mnt/nothing") == nullptr);

  const MountEntry* c = mount_containing(all, "/mnt/hf/sub/file.bin");
  REQUIRE(c);
  CHECK(c->id == 61);
  CHECK(mount_containing(all, "/mnt/hfx/file")->mountpoint == "/");  // prefix must end at '/'
  CHECK(mount_containing(all, "/home/u/my models/a")->id == 62);
  CHECK(mount_containing(all, "/home/u/my models/inner/a")->fstype == "tmpfs");
  CHECK(mount_containing(all, "/home/u/my models")->id == 62);
}

TEST_CASE("mountinfo: this process's real table parses") {
  auto all = read_mountinfo();
  REQUIRE(all.ok());
  REQUIRE_FALSE(all->empty());
  CHECK(mount_containing(*all, "/") != nullptr);
}

TEST_CASE("normalize_path") {
  CHECK(normalize_path("/") == "/");
  CHECK(normalize_path("//a/./b/../c/") == "/a/c");
  CHECK(normalize_path("/../..") == "/");
  CHECK(normalize_path("/mnt/x") == "/mnt/x");
}

TEST_CASE("mountinfo: a malformed device field skips the line") {
  auto all = parse_mountinfo(
      "1 0 8 / / rw - ext4 /dev/sda1 rw\n"
      "2 0 8:x / /a rw - ext4 /dev/sda1 rw\n"
      "3 0 99999999999:1 / /b rw - ext4 /dev/sda1 rw\n"
      "4 0 8:2 / /c rw - ext4 /dev/sda2 rw\n");
  REQUIRE(all.size() == 1);
  CHECK(all[0].mountpoint == "/c");
}

TEST_CASE("mountinfo: the device numbers match stat() of the mount points") {
  auto all = read_mountinfo();
  REQUIRE(all.ok());
  const MountEntry* root = mount_containing(*all, "/");
  REQUIRE(root);
  struct stat st {};
  REQUIRE(::stat("/", &st) == 0);
  CHECK(root->dev_major == major(st.st_dev));
  CHECK(root->dev_minor == minor(st.st_dev));
}
