#include "gpu/visible_devices.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace clams::gpu_internal {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

const std::vector<std::string> kUuids = {
    "GPU-8932f937-d72c-4106-c12f-20bd9faed9f6",
    "GPU-89a1c2d3-0000-1111-2222-333344445555",
    "GPU-1234abcd-9999-8888-7777-666655554444",
};

TEST(MapVisibleDevicesTest, UnsetShowsEveryDeviceInOrder) {
  VisibleDevices v = MapVisibleDevices(false, "", kUuids);
  EXPECT_THAT(v.physical, ElementsAre(0, 1, 2));
  EXPECT_EQ(v.note, "");
}

TEST(MapVisibleDevicesTest, EmptyValueHidesEveryDevice) {
  VisibleDevices v = MapVisibleDevices(true, "", kUuids);
  EXPECT_THAT(v.physical, IsEmpty());
  EXPECT_EQ(v.note, "CUDA_VISIBLE_DEVICES is empty: no device is visible");
  EXPECT_THAT(MapVisibleDevices(true, "  ", kUuids).physical, IsEmpty());
}

TEST(MapVisibleDevicesTest, IndicesSelectAndReorder) {
  EXPECT_THAT(MapVisibleDevices(true, "2,0", kUuids).physical, ElementsAre(2, 0));
  EXPECT_THAT(MapVisibleDevices(true, " 1 , 2 ", kUuids).physical, ElementsAre(1, 2));
  EXPECT_THAT(MapVisibleDevices(true, "01", kUuids).physical, ElementsAre(1));
  EXPECT_EQ(MapVisibleDevices(true, "2,0", kUuids).note, "");
}

TEST(MapVisibleDevicesTest, FullUuidsAndUniquePrefixes) {
  EXPECT_THAT(MapVisibleDevices(true, kUuids[2] + "," + kUuids[0], kUuids).physical,
              ElementsAre(2, 0));
  EXPECT_THAT(MapVisibleDevices(true, "GPU-1234,GPU-8932f", kUuids).physical, ElementsAre(2, 0));
  EXPECT_THAT(MapVisibleDevices(true, "gpu-1234ABCD", kUuids).physical, ElementsAre(2));
}

TEST(MapVisibleDevicesTest, AnInvalidEntryEndsTheList) {
  VisibleDevices v = MapVisibleDevices(true, "1,7,0", kUuids);
  EXPECT_THAT(v.physical, ElementsAre(1));
  EXPECT_EQ(v.note,
            "CUDA_VISIBLE_DEVICES=\"1,7,0\": index 7 is out of range (3 devices); the devices "
            "from this entry on are not visible (as in CUDA)");
}

TEST(MapVisibleDevicesTest, InvalidEntries) {
  struct Case {
    std::string value;
    std::vector<int> physical;
    std::string why;
  };
  const std::vector<Case> cases = {
      {"-1", {}, "\"-1\" is neither a device index nor a device id"},
      {"0,,1", {0}, "an empty entry"},
      {"0,", {0}, "an empty entry"},
      {"1,1", {1}, "\"1\" names a device already listed"},
      {"0,GPU-8932f937-d72c-4106-c12f-20bd9faed9f6", {0}, "names a device already listed"},
      {"GPU-89", {}, "\"GPU-89\" matches more than one device"},
      {"GPU-ffff", {}, "no device has the id \"GPU-ffff\""},
      {"GPU-", {}, "\"GPU-\" is neither a device index nor a device id"},
      {"8932f937", {}, "\"8932f937\" is neither a device index nor a device id"},
      {"2,MIG-GPU-8932f937-d72c-4106-c12f-20bd9faed9f6/1/0",
       {2},
       "is a MIG device, which clams does not support"},
      {"MIG-4f7b3a2e-1111-2222-3333-444455556666", {}, "is a MIG device"},
      {"99999999999999", {}, "index 99999999999999 is out of range (3 devices)"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.value);
    VisibleDevices v = MapVisibleDevices(true, c.value, kUuids);
    EXPECT_EQ(v.physical, c.physical);
    EXPECT_THAT(v.note, ::testing::HasSubstr(c.why));
  }
}

TEST(MapVisibleDevicesTest, SimulatedIdsPreferAnExactMatch) {
  std::vector<std::string> sims;
  for (int i = 0; i < 12; ++i) sims.push_back("SIM-GPU-" + std::to_string(i));
  EXPECT_THAT(MapVisibleDevices(true, "SIM-GPU-1", sims).physical, ElementsAre(1));
  EXPECT_THAT(MapVisibleDevices(true, "SIM-GPU-11,sim-gpu-0", sims).physical, ElementsAre(11, 0));
  EXPECT_THAT(MapVisibleDevices(true, "SIM-GPU-", sims).physical, IsEmpty());
}

}  // namespace
}  // namespace clams::gpu_internal
